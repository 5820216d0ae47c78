// The C baselines of bench/dirty-snapshot.js. One workload per invocation; one JSON line out.
// Built by the benchmark with `cc -O2`.
//
//   dirty-scan scan LENGTH PERMILLE REPS   a WP_ASYNC + WP_UNPOPULATED range, armed, with
//                                          PERMILLE/1000 of its pages written; times REPS
//                                          PAGEMAP_SCAN walks of it (no reset), as dirtyPages does
//   dirty-scan write LENGTH FILE           write(2) of a filled, quiescent region to FILE
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct region { uint64_t start, end, categories; };
struct scan_arg { uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
                  category_inverted, category_mask, category_anyof_mask, return_mask; };
#define SCAN _IOWR('f', 0x10, struct scan_arg)

static uint64_t now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char* what) { perror(what); exit(1); }

static int scan(size_t len, int permille, int reps) {
  char* base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) die("mmap");
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* user mode only */);
  if (fd < 0) die("userfaultfd");
  struct uffdio_api api = { UFFD_API, (1 << 15) | (1 << 13), 0 };
  if (ioctl(fd, UFFDIO_API, &api)) die("UFFDIO_API");
  struct uffdio_register reg = { { (uint64_t)base, len }, UFFDIO_REGISTER_MODE_WP, 0 };
  if (ioctl(fd, UFFDIO_REGISTER, &reg)) die("UFFDIO_REGISTER");
  struct uffdio_writeprotect wp = { { (uint64_t)base, len }, UFFDIO_WRITEPROTECT_MODE_WP };
  if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) die("UFFDIO_WRITEPROTECT");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = len / page;
  for (size_t p = 0; p < pages; p++) {
    if ((p * 2654435761u) % 1000 < (unsigned)permille) base[p * page] = 1;
  }
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) die("pagemap");
  static struct region vec[512];
  uint64_t runs = 0, t0 = now();
  for (int r = 0; r < reps; r++) {
    uint64_t at = (uint64_t)base, end = (uint64_t)base + len;
    while (at < end) {
      struct scan_arg a = { sizeof a, 2 /* CHECK_WPASYNC */, at, end, 0, (uint64_t)vec, 512, 0, 0, 2, 0, 2 };
      long n = ioctl(pm, SCAN, &a);
      if (n < 0) die("PAGEMAP_SCAN");
      runs += (uint64_t)n;
      if (a.walk_end <= at) break;
      at = a.walk_end;
    }
  }
  uint64_t ns = now() - t0;
  printf("{\"nsPerScan\":%.0f,\"runs\":%llu}\n", (double)ns / reps, (unsigned long long)(runs / reps));
  return 0;
}

static int writeFile(size_t len, const char* path) {
  char* base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) die("mmap");
  for (size_t i = 0; i < len; i += 64) base[i] = (char)i;
  uint64_t t0 = now();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open");
  for (size_t done = 0; done < len;) {
    ssize_t n = write(fd, base + done, len - done);
    if (n <= 0) die("write");
    done += (size_t)n;
  }
  if (fdatasync(fd) != 0) die("fdatasync");
  close(fd);
  printf("{\"ns\":%llu}\n", (unsigned long long)(now() - t0));
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "scan") == 0) return scan(strtoull(argv[2], 0, 10), atoi(argv[3]), atoi(argv[4]));
  if (argc == 4 && strcmp(argv[1], "write") == 0) return writeFile(strtoull(argv[2], 0, 10), argv[3]);
  fprintf(stderr, "usage: dirty-scan scan LENGTH PERMILLE REPS | write LENGTH FILE\n");
  return 2;
}
