// What the touching programs of the benchmarks share (ws-touch.c, image-clone.c): dying with the
// reason, the clock the benchmark shares (CLOCK_MONOTONIC, as process.hrtime.bigint()), and the
// order of pages to touch (a file of little-endian u32 page indexes). Included by each program,
// which is built alone with `cc`.
#ifndef UFFD_BENCH_TOUCH_ORDER_H
#define UFFD_BENCH_TOUCH_ORDER_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what) {
  fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint32_t* read_order(const char* path, size_t* count) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open order");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat order");
  uint32_t* order = malloc((size_t)st.st_size);
  if (read(fd, order, (size_t)st.st_size) != st.st_size) die("read order");
  close(fd);
  *count = (size_t)st.st_size / 4;
  return order;
}

#endif
