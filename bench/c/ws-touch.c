// The workload of bench/working-set.js: a program restoring from an image, touching the pages
// of a fixed scattered order (ORDER: little-endian u32 page indexes) and reading the first
// BYTES of each (default 64: one cache line; 4096: the whole page). Built by the benchmark with `cc -O2`. Prints one JSON line with CLOCK_MONOTONIC
// timestamps (ns), which Node's process.hrtime.bigint() shares.
//
//   ws-touch uffd SOCK LENGTH ORDER [BYTES]    maps LENGTH bytes, registers them with a userfaultfd,
//                                      sends it to SOCK (SCM_RIGHTS, payload: the address),
//                                      waits for a byte on stdin, then touches ORDER
//   ws-touch memory IMAGE LENGTH ORDER [BYTES] the baseline: IMAGE read into populated memory first
//                                      (not timed), then the same touches
//   ws-touch drop FILE...              a cold cache for these files only: their pages leave the
//                                      page cache (fdatasync, POSIX_FADV_DONTNEED), no host-wide
//                                      setting is changed
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "touch-order.h"

// The kernel's base page (4 KiB on x86-64; 4, 16 or 64 KiB on arm64), set first thing in main().
static uint64_t PAGE;


static void send_uffd(const char* sock, int uffd, uint64_t addr) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strncpy(sa.sun_path, sock, sizeof sa.sun_path - 1);
  if (connect(s, (struct sockaddr*)&sa, sizeof sa) != 0) die("connect");
  char payload[32];
  int n = snprintf(payload, sizeof payload, "%llu", (unsigned long long)addr);
  struct iovec iov = {payload, (size_t)n};
  char control[CMSG_SPACE(sizeof(int))] = {0};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &uffd, sizeof(int));
  if (sendmsg(s, &msg, 0) != n) die("sendmsg");
  // The socket stays open (as Firecracker's does) until the process exits.
}

// Reads the first `bytes` of each page in ORDER: the data is used, not only mapped.
static uint64_t touch(const uint8_t* mem, const uint32_t* order, size_t count, size_t bytes, uint64_t* first,
                      uint64_t* end) {
  uint64_t sum = 0;
  for (size_t i = 0; i < count; i++) {
    const uint64_t* p = (const uint64_t*)(mem + (uint64_t)order[i] * PAGE);
    for (size_t k = 0; k < bytes / 8; k++) sum += p[k];
    if (i == 0) *first = now_ns();
  }
  *end = now_ns();
  return sum;  // printed: every variant must read the same bytes
}

// Drops FILE's pages from the page cache (clean pages not mapped anywhere: all of them here).
static int drop(int argc, char** argv) {
  for (int i = 2; i < argc; i++) {
    int fd = open(argv[i], O_RDONLY);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      die("open");
    }
    if (fdatasync(fd) != 0) die("fdatasync");
    int err = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (err != 0) {
      errno = err;
      die("posix_fadvise");
    }
    close(fd);
  }
  return 0;
}

int main(int argc, char** argv) {
  PAGE = (uint64_t)sysconf(_SC_PAGESIZE);
  if (argc >= 2 && strcmp(argv[1], "drop") == 0) return drop(argc, argv);
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: ws-touch uffd SOCK LENGTH ORDER [BYTES] | memory IMAGE LENGTH ORDER [BYTES]\n");
    return 2;
  }
  size_t bytes = argc == 6 ? (size_t)strtoul(argv[5], NULL, 10) : 64;
  if (bytes < 8 || bytes > PAGE) bytes = 64;
  uint64_t length = strtoull(argv[3], NULL, 10);
  size_t count;
  uint32_t* order = read_order(argv[4], &count);
  uint8_t* mem = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  uint64_t first = 0, end = 0, start = 0, sum = 0;
  if (strcmp(argv[1], "memory") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) die("open image");
    for (uint64_t off = 0; off < length;) {
      ssize_t n = pread(fd, mem + off, length - off > (8u << 20) ? (8u << 20) : length - off, (off_t)off);
      if (n <= 0) die("pread image");
      off += (uint64_t)n;
    }
    close(fd);
    start = now_ns();
    sum = touch(mem, order, count, bytes, &first, &end);
  } else {
    int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) die("userfaultfd");
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(uffd, UFFDIO_API, &api) != 0) die("UFFDIO_API");
    struct uffdio_register reg = {.range = {(uint64_t)mem, length}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
    send_uffd(argv[2], uffd, (uint64_t)mem);
    char go;
    if (read(0, &go, 1) != 1) die("read go");
    start = now_ns();
    sum = touch(mem, order, count, bytes, &first, &end);
  }
  // The sum as a string: JSON numbers lose bits past 2^53.
  printf("{\"start\":%llu,\"first\":%llu,\"end\":%llu,\"pages\":%zu,\"sum\":\"%llu\"}\n",
         (unsigned long long)start, (unsigned long long)first, (unsigned long long)end, count,
         (unsigned long long)sum);
  return 0;
}
