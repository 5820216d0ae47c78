// A clone process of bench/shared-image.js: it restores from an image, touching the pages of a
// fixed order (ORDER: little-endian u32 page indexes) and reading the first BYTES of each.
// Built by the benchmark with `cc -O2`. It says "ready" once its memory is set up, waits for a
// byte on stdin, touches, prints one JSON line (the touches' CLOCK_MONOTONIC ns), then keeps the
// mapping until stdin closes, printing its mapping's Rss, Pss and Anonymous bytes (from
// /proc/self/smaps) for each further byte: the benchmark asks once every clone has touched.
//
//   image-clone image SOCK ORDER BYTES          a clone of a shared image: the handshake of
//                                                lib/tools/image-client.ts (the image's memfd
//                                                mapped privately, its uffd sent back)
//   image-clone serve SOCK LENGTH ORDER BYTES   today's way: private anonymous memory whose uffd
//                                                goes to a handler that serve()s it
//   image-clone filled SOCK ORDER BYTES         baseline: the image's memfd, already filled,
//                                                mapped without a uffd (the kernel alone)
//   image-clone anon LENGTH ORDER BYTES         baseline: the kernel's demand-zero faults
//   image-clone memory LENGTH ORDER BYTES       baseline: memory populated before the touches
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../test/fixtures/handshake.h"
#include "touch-order.h"

static int connect_or_die(const char* path) {
  int s = connect_retry(path);
  if (s < 0) die("connect");
  return s;
}

static uint64_t PAGE;  // the base page size (sysconf)
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

// One framed message ("\0UFD", u32 length, payload) with `fd` (or -1) on its first byte.
static void send_framed(int s, int fd, const char* json) {
  size_t n = strlen(json);
  char buf[512];
  memcpy(buf, "\0UFD", 4);
  uint32_t len = (uint32_t)n;
  memcpy(buf + 4, &len, 4);
  memcpy(buf + 8, json, n);
  if (send_bytes(s, buf, n + 8, fd) != 0) die("sendmsg");
}

// One framed message into `json` (NUL-terminated); returns the fd that came with it, or -1.
static int recv_framed(int s, char* json, size_t cap) {
  char buf[512];
  size_t got = 0, want = 8;
  int fd = -1;
  while (got < want) {
    struct iovec iov = {buf + got, want - got};
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) die("recvmsg");
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c != NULL && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof(int));
    got += (size_t)n;
    if (want == 8 && got >= 8) {
      uint32_t len;
      memcpy(&len, buf + 4, 4);
      if (len + 8 > sizeof buf || len >= cap) {
        errno = EMSGSIZE;
        die("message");
      }
      want = 8 + len;
    }
  }
  memcpy(json, buf + 8, want - 8);
  json[want - 8] = 0;
  return fd;
}

static int open_uffd(void) {
  int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0 && errno == EPERM) uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (uffd < 0) die("userfaultfd");
  struct uffdio_api api = {.api = UFFD_API, .features = 0};
  if (ioctl(uffd, UFFDIO_API, &api) != 0) die("UFFDIO_API");
  return uffd;
}

// The image the listener hands over, mapped privately; *length its size, *minor its mode.
static uint8_t* map_image(int s, uint64_t* length, int* minor) {
  char json[512];
  int fd = recv_framed(s, json, sizeof json);
  const char* size = strstr(json, "\"size\":");
  if (fd < 0 || size == NULL) {
    errno = EPROTO;
    die("image handshake");
  }
  *length = strtoull(size + 7, NULL, 10);
  *minor = strstr(json, "\"minor\"") != NULL;
  uint8_t* mem = mmap(NULL, *length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (mem == MAP_FAILED) die("mmap image");
  close(fd);
  return mem;
}

// Reads the first `bytes` of each page in ORDER: the data is used, not only mapped.
static void touch(const uint8_t* mem, const uint32_t* order, size_t count, size_t bytes, uint64_t* end) {
  uint64_t sum = 0;
  for (size_t i = 0; i < count; i++) {
    const uint64_t* p = (const uint64_t*)(mem + (uint64_t)order[i] * PAGE);
    for (size_t k = 0; k < bytes / 8; k++) sum += p[k];
  }
  *end = now_ns();
  if (sum == 42) fprintf(stderr, "\n");  // keeps the loop
}

// The smaps field `name` (kB) of the mapping that starts at `mem`, in bytes.
static uint64_t smaps_field(const uint8_t* mem, const char* name) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return 0;
  char line[512], head[32];
  snprintf(head, sizeof head, "%lx-", (unsigned long)(uintptr_t)mem);
  int in = 0;
  uint64_t v = 0;
  size_t nl = strlen(name);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strchr(line, '-') != NULL && strchr(line, ' ') != NULL && line[0] != ' ' && strstr(line, " kB") == NULL)
      in = strncmp(line, head, strlen(head)) == 0;
    else if (in && strncmp(line, name, nl) == 0 && line[nl] == ':')
      v = strtoull(line + nl + 1, NULL, 10) * 1024;
  }
  fclose(f);
  return v;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: image-clone image|filled SOCK ORDER BYTES | serve SOCK LENGTH ORDER BYTES | anon|memory LENGTH ORDER BYTES\n");
    return 2;
  }
  PAGE = (uint64_t)sysconf(_SC_PAGESIZE);
  const char* mode = argv[1];
  int serve = strcmp(mode, "serve") == 0;
  const char* orderPath = serve ? argv[4] : argv[3];
  size_t bytes = (size_t)strtoul(serve ? argv[5] : argv[4], NULL, 10);
  if (bytes < 8 || bytes > PAGE) bytes = 64;
  size_t count;
  uint32_t* order = read_order(orderPath, &count);
  uint64_t length = 0;
  uint8_t* mem;
  int sock = -1;
  if (strcmp(mode, "image") == 0 || strcmp(mode, "filled") == 0) {
    int minor = 0;
    sock = connect_or_die(argv[2]);
    mem = map_image(sock, &length, &minor);
    if (strcmp(mode, "image") == 0) {
      int uffd = open_uffd();
      struct uffdio_register reg = {.range = {(uint64_t)mem, length},
                                    .mode = UFFDIO_REGISTER_MODE_MISSING | (minor ? UFFDIO_REGISTER_MODE_MINOR : 0)};
      if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
      char json[160], answer[512];
      snprintf(json, sizeof json, "{\"clone\":{\"start\":\"0x%lx\",\"length\":%llu}}", (unsigned long)(uintptr_t)mem,
               (unsigned long long)length);
      send_framed(sock, uffd, json);
      recv_framed(sock, answer, sizeof answer);
      if (strstr(answer, "\"serving\":true") == NULL) {
        fprintf(stderr, "image-clone: refused: %s\n", answer);
        return 1;
      }
    } else {
      close(sock);  // the kernel alone serves it: no uffd
      sock = -1;
    }
  } else {
    length = strtoull(serve ? argv[3] : argv[2], NULL, 10);
    mem = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    if (serve) {
      int uffd = open_uffd();
      struct uffdio_register reg = {.range = {(uint64_t)mem, length}, .mode = UFFDIO_REGISTER_MODE_MISSING};
      if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
      char json[160];
      snprintf(json, sizeof json, "{\"start\":\"0x%lx\",\"length\":%llu}", (unsigned long)(uintptr_t)mem,
               (unsigned long long)length);
      sock = connect_or_die(argv[2]);
      send_framed(sock, uffd, json);
    } else if (strcmp(mode, "memory") == 0) {
      for (size_t i = 0; i < count; i++) mem[(uint64_t)order[i] * PAGE] = 1;  // populated, not timed
    }
  }
  printf("ready\n");
  fflush(stdout);
  char go;
  if (read(0, &go, 1) != 1) die("read go");
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  uint64_t start = now_ns(), end = 0;
  touch(mem, order, count, bytes, &end);
  getrusage(RUSAGE_SELF, &after);
  // Kernel page faults taken by the touches (a userfaultfd fault counts once, on its retry).
  // And the CPU time they took (user and system): what the load of other processes disturbs least.
  long cpu_us = (after.ru_utime.tv_sec - before.ru_utime.tv_sec + after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1000000L +
                (after.ru_utime.tv_usec - before.ru_utime.tv_usec + after.ru_stime.tv_usec - before.ru_stime.tv_usec);
  printf("{\"ns\":%llu,\"pages\":%zu,\"faults\":%ld,\"cpuUs\":%ld}\n", (unsigned long long)(end - start), count,
         (after.ru_minflt - before.ru_minflt) + (after.ru_majflt - before.ru_majflt), cpu_us);
  fflush(stdout);
  while (read(0, &go, 1) > 0) {
    printf("{\"rss\":%llu,\"pss\":%llu,\"anon\":%llu}\n", (unsigned long long)smaps_field(mem, "Rss"),
           (unsigned long long)smaps_field(mem, "Pss"), (unsigned long long)smaps_field(mem, "Anonymous"));
    fflush(stdout);
  }
  if (sock >= 0) close(sock);
  return 0;
}
