// The C baselines of bench/run.js: a plain poll + read + UFFDIO_COPY handler (the loop of the
// kernel selftests' uffd-common.c and Firecracker's example page-fault handler), the kernel's
// own demand-zero faults, memcpy, and a loop of bare ioctls. One workload per invocation; the
// result is one JSON line on stdout. Built by bench/run.js with `cc -O2 -pthread`.
//
//   baseline seq-uffd FILE LENGTH WINDOW  faulter memcpy()s into a registered region; a handler
//                                          thread answers each fault with WINDOW bytes of FILE
//   baseline seq-zero LENGTH               the same memcpy into fresh anonymous memory
//   baseline seq-memcpy LENGTH             the same memcpy into memory already populated
//   baseline rand-uffd LENGTH COUNT        COUNT reads of random missing pages, one page per fault
//   baseline ioctl COUNT                   COUNT x UFFDIO_COPY(4 KiB, DONTWAKE) into fresh pages
//   baseline scale THREADS shared|per|zero LENGTH
//   baseline batch K ROUNDS wake|dontwake
//   baseline wake-touch COUNT PAGES        UFFDIO_WAKE loop touching PAGES other pages between two
//                                          calls, and the touches alone: what a larger working set
//                                          between system calls costs (TLB refills after each one
//                                          on a kernel with page-table isolation and no PCID)
//   baseline fault COUNT                   the main thread loads one byte of each of COUNT missing
//                                          pages in turn; a handler thread answers one page per
//                                          fault (bench/node-work.js fault: the same touches)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// The kernel's base page (4 KiB on x86-64; 4, 16 or 64 KiB on arm64), set first thing in main().
static uint64_t PAGE;
#define CHUNK (4UL << 20)  // the faulting thread's memcpy size, as in bench/node-work.js

static void die(const char* what) {
  fprintf(stderr, "baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  fclose(f);
  return resident * (long)(PAGE / 1024);
}

static int open_uffd(void) {
  int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) die("userfaultfd");
  struct uffdio_api api = {.api = UFFD_API, .features = 0};
  if (ioctl(fd, UFFDIO_API, &api) != 0) die("UFFDIO_API");
  return fd;
}

static void uffd_register(int fd, void* addr, size_t len) {
  struct uffdio_register r = {.range = {(uint64_t)addr, len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(fd, UFFDIO_REGISTER, &r) != 0) die("UFFDIO_REGISTER");
}

static uint8_t* map_anon(size_t len) {
  void* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

// UFFDIO_COPY of [dst, dst + len) from src; EEXIST (a racing fault on a present page) wakes.
static void copy_or_wake(int fd, uint64_t dst, const uint8_t* src, uint64_t len, uint64_t mode) {
  struct uffdio_copy c = {.dst = dst, .src = (uint64_t)src, .len = len, .mode = mode};
  while (ioctl(fd, UFFDIO_COPY, &c) != 0) {
    if (errno == EAGAIN && c.copy > 0) {
      c.dst += (uint64_t)c.copy, c.src += (uint64_t)c.copy, c.len -= (uint64_t)c.copy;
      c.copy = 0;
      continue;
    }
    if (errno == EEXIST) {
      struct uffdio_range r = {dst, PAGE};
      ioctl(fd, UFFDIO_WAKE, &r);
      return;
    }
    die("UFFDIO_COPY");
  }
}

// ---- the handler: poll + read + UFFDIO_COPY -------------------------------------------------

struct handler {
  int uffd, stopfd;
  uint64_t base, length, window;  // window: bytes answered per fault
  const uint8_t* source;          // the bytes of [base, base + length)
  pthread_t thread;
  uint64_t faults;
  // relay: the handler thread only reads, and hands the messages to a second thread that
  // answers them (through a mutex-guarded queue and an eventfd that thread polls), the shape
  // of this package's reader thread -> thread-safe function -> JS thread: one more hop.
  int relay, relayfd;
  pthread_t relayThread;
  pthread_mutex_t mu;
  struct uffd_msg queue[4096];
  int queued;
};

static void answer(struct handler* h, const struct uffd_msg* m) {
  if (m->event != UFFD_EVENT_PAGEFAULT) return;
  h->faults++;
  uint64_t page = m->arg.pagefault.address & ~(PAGE - 1);
  uint64_t end = page + h->window;
  if (end > h->base + h->length) end = h->base + h->length;
  copy_or_wake(h->uffd, page, h->source + (page - h->base), end - page, 0);
}

static void* relay_main(void* arg) {
  struct handler* h = arg;
  static struct uffd_msg batch[4096];
  struct pollfd fds[2] = {{h->relayfd, POLLIN, 0}, {h->stopfd, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) return NULL;
    uint64_t v;
    if (read(h->relayfd, &v, sizeof v) < 0) continue;
    pthread_mutex_lock(&h->mu);
    int n = h->queued;
    memcpy(batch, h->queue, (size_t)n * sizeof batch[0]);
    h->queued = 0;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n; i++) answer(h, &batch[i]);
  }
}

static void* handler_main(void* arg) {
  struct handler* h = arg;
  struct uffd_msg msgs[64];
  struct pollfd fds[2] = {{h->uffd, POLLIN, 0}, {h->stopfd, POLLIN, 0}};
  // BASELINE_SPIN_NS: after each batch, keep trying read(2) this long before sleeping in poll.
  uint64_t spin = getenv("BASELINE_SPIN_NS") ? strtoull(getenv("BASELINE_SPIN_NS"), NULL, 0) : 0;
  int spun = 0;
  for (;;) {
    if (spin > 0 && spun) {
      uint64_t until = now_ns() + spin;
      ssize_t n;
      while ((n = read(h->uffd, msgs, sizeof msgs)) < 0 && errno == EAGAIN && now_ns() < until) {
      }
      if (n > 0) {
        for (int i = 0; i < (int)(n / (ssize_t)sizeof msgs[0]); i++) answer(h, &msgs[i]);
        continue;
      }
    }
    spun = 1;
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[1].revents) return NULL;
    ssize_t n = read(h->uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EAGAIN) continue;
      die("read");
    }
    int count = (int)(n / (ssize_t)sizeof msgs[0]);
    if (h->relay) {
      pthread_mutex_lock(&h->mu);
      for (int i = 0; i < count && h->queued < 4096; i++) h->queue[h->queued++] = msgs[i];
      pthread_mutex_unlock(&h->mu);
      uint64_t one = 1;
      if (write(h->relayfd, &one, sizeof one) < 0) die("write");
      continue;
    }
    for (int i = 0; i < count; i++) answer(h, &msgs[i]);
  }
}

static void handler_start(struct handler* h, int uffd, void* base, uint64_t length, uint64_t window,
                          const uint8_t* source) {
  memset(h, 0, sizeof *h);
  h->uffd = uffd;
  h->stopfd = eventfd(0, EFD_CLOEXEC);
  h->base = (uint64_t)base, h->length = length, h->window = window, h->source = source;
  h->relay = getenv("BASELINE_RELAY") != NULL;
  if (h->relay) {
    h->relayfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&h->mu, NULL);
    if (pthread_create(&h->relayThread, NULL, relay_main, h) != 0) die("pthread_create");
  }
  if (pthread_create(&h->thread, NULL, handler_main, h) != 0) die("pthread_create");
}

static void handler_stop(struct handler* h) {
  uint64_t one = 1;
  if (write(h->stopfd, &one, sizeof one) < 0) die("write");
  pthread_join(h->thread, NULL);
  if (h->relay) {
    pthread_join(h->relayThread, NULL);
    close(h->relayfd);
  }
  close(h->stopfd);
}

// ---- the faulting side -----------------------------------------------------------------------

// The bytes the faulting thread writes, SKEW bytes past a page boundary: with source and
// destination both page aligned, glibc's memcpy takes its backward loop (4 KiB aliasing
// avoidance) and the faults would come in descending order. bench/node-work.js writes from
// the same offset of a Region.
#define SKEW 64
static uint8_t* warm_source(void) {
  uint8_t* src = map_anon(CHUNK + PAGE);
  for (size_t i = 0; i < CHUNK + PAGE; i++) src[i] = (uint8_t)(i * 7);
  return src + SKEW;
}

// What bench/node-work.js does with region.write on the thread pool: memcpy in 4 MiB chunks.
static void fill(uint8_t* dst, size_t len, const uint8_t* src) {
  for (size_t off = 0; off < len; off += CHUNK) {
    size_t n = len - off < CHUNK ? len - off : CHUNK;
    memcpy(dst + off, src, n);
  }
}

static const uint8_t* map_file(const char* path, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  void* p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) die("mmap file");
  close(fd);
  madvise(p, len, MADV_SEQUENTIAL);
  return p;
}

static int seq(int argc, char** argv, const char* kind) {
  const char* path = NULL;
  uint64_t len, window = PAGE;
  if (strcmp(kind, "uffd") == 0) {
    if (argc < 5) return 2;
    path = argv[2], len = strtoull(argv[3], NULL, 0), window = strtoull(argv[4], NULL, 0);
  } else {
    if (argc < 3) return 2;
    len = strtoull(argv[2], NULL, 0);
  }
  uint8_t* src = warm_source();
  uint8_t* region = map_anon(len);
  long rss0 = rss_kib();
  static struct handler h;
  int uffd = -1;
  if (path != NULL) {
    uffd = open_uffd();
    uffd_register(uffd, region, len);
    handler_start(&h, uffd, region, len, window, map_file(path, len));
  } else if (strcmp(kind, "memcpy") == 0) {
    memset(region, 1, len);
  }
  uint64_t t0 = now_ns();
  fill(region, len, src);
  uint64_t ns = now_ns() - t0;
  long rss1 = rss_kib();
  uint64_t faults = 0;
  if (path != NULL) {
    handler_stop(&h);
    faults = h.faults;
    close(uffd);
  }
  printf("{\"ns\":%llu,\"bytes\":%llu,\"faults\":%llu,\"rssBeforeKiB\":%ld,\"rssAfterKiB\":%ld}\n",
         (unsigned long long)ns, (unsigned long long)len, (unsigned long long)faults, rss0, rss1);
  return 0;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

// Pages 0..n-1 in a random order (xorshift, fixed seed: the same order in every run).
static uint32_t* shuffled(uint32_t n, uint32_t count) {
  uint32_t* p = malloc(n * sizeof *p);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (uint32_t i = 0; i < n; i++) p[i] = i;
  for (uint32_t i = n - 1; i > 0; i--) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t j = (uint32_t)(s % (i + 1));
    uint32_t t = p[i];
    p[i] = p[j], p[j] = t;
  }
  (void)count;
  return p;
}

// A stand-in for libuv's thread pool, for `rand-uffd ... pool`: the main thread hands each read
// to a worker thread (mutex + condition variable, as uv_queue_work does) and sleeps in poll(2)
// on an eventfd until the worker signals completion (as uv_async_send wakes the loop).
struct pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;                 // eventfd
  volatile uint8_t* job;    // the byte to read, NULL when idle
  int quit;
  pthread_t thread;
};

static void* pool_main(void* arg) {
  struct pool* p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->job == NULL && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
    if (p->quit) break;
    volatile uint8_t* job = p->job;
    p->job = NULL;
    pthread_mutex_unlock(&p->mu);
    (void)*job;
    uint64_t one = 1;
    if (write(p->done, &one, sizeof one) < 0) die("write");
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void pool_read(struct pool* p, volatile uint8_t* byte) {
  pthread_mutex_lock(&p->mu);
  p->job = byte;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  struct pollfd fd = {p->done, POLLIN, 0};
  while (poll(&fd, 1, -1) < 0) {
  }
  uint64_t v;
  if (read(p->done, &v, sizeof v) < 0) die("read");
}

static int rand_uffd(int argc, char** argv) {
  if (argc < 4) return 2;
  uint64_t len = strtoull(argv[2], NULL, 0);
  uint32_t count = (uint32_t)strtoul(argv[3], NULL, 0);
  int via_pool = argc > 4 && strcmp(argv[4], "pool") == 0;
  uint32_t pages = (uint32_t)(len / PAGE);
  if (count > pages) count = pages;
  uint8_t* region = map_anon(len);
  uint8_t* source = map_anon(len);
  memset(source, 0x5a, len);
  int uffd = open_uffd();
  uffd_register(uffd, region, len);
  static struct handler h;
  handler_start(&h, uffd, region, len, PAGE, source);
  struct pool pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, eventfd(0, EFD_CLOEXEC), NULL, 0, 0};
  if (via_pool) pthread_create(&pool.thread, NULL, pool_main, &pool);
  uint32_t* order = shuffled(pages, count);
  uint64_t* lat = malloc(count * sizeof *lat);
  uint64_t* floor = malloc(count * sizeof *floor);
  volatile uint8_t sink = 0;
  uint64_t t00 = now_ns();
  for (uint32_t i = 0; i < count; i++) {
    uint64_t t0 = now_ns();
    if (via_pool) pool_read(&pool, region + (uint64_t)order[i] * PAGE);
    else sink += region[(uint64_t)order[i] * PAGE];
    lat[i] = now_ns() - t0;
  }
  uint64_t total = now_ns() - t00;
  for (uint32_t i = 0; i < count; i++) {  // the same reads of present pages
    uint64_t t0 = now_ns();
    if (via_pool) pool_read(&pool, region + (uint64_t)order[i] * PAGE);
    else sink += region[(uint64_t)order[i] * PAGE];
    floor[i] = now_ns() - t0;
  }
  if (via_pool) {
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    pthread_join(pool.thread, NULL);
  }
  handler_stop(&h);
  qsort(lat, count, sizeof *lat, cmp_u64);
  qsort(floor, count, sizeof *floor, cmp_u64);
  printf("{\"count\":%u,\"p50\":%llu,\"p99\":%llu,\"meanNs\":%.1f,\"floorP50\":%llu,\"netP50\":%lld}\n",
         count, (unsigned long long)lat[count / 2], (unsigned long long)lat[(uint64_t)count * 99 / 100],
         (double)total / count, (unsigned long long)floor[count / 2],
         (long long)lat[count / 2] - (long long)floor[count / 2]);
  return 0;
}

static int ioctl_loop(int argc, char** argv) {
  if (argc < 3) return 2;
  uint64_t count = strtoull(argv[2], NULL, 0);
  uint8_t* region = map_anon(count * PAGE);
  uint8_t* src = warm_source();
  int uffd = open_uffd();
  uffd_register(uffd, region, count * PAGE);
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    struct uffdio_copy c = {(uint64_t)region + i * PAGE, (uint64_t)src, PAGE, UFFDIO_COPY_MODE_DONTWAKE, 0};
    if (ioctl(uffd, UFFDIO_COPY, &c) != 0) die("UFFDIO_COPY");
  }
  uint64_t ns = now_ns() - t0;
  getrusage(RUSAGE_SELF, &ru1);
  double userNs = ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e9 + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e3) / count;
  double sysNs = ((ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e9 + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e3) / count;
  // UFFDIO_WAKE of one page nobody waits on: the cheapest range ioctl, for the per-call cost
  // of the binding with as little kernel work as possible.
  uint64_t t1 = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    struct uffdio_range r = {(uint64_t)region + (i % 64) * PAGE, PAGE};
    if (ioctl(uffd, UFFDIO_WAKE, &r) != 0) die("UFFDIO_WAKE");
  }
  uint64_t wakeNs = now_ns() - t1;
  printf("{\"count\":%llu,\"nsPerCall\":%.1f,\"wakeNs\":%.1f,\"userNs\":%.1f,\"sysNs\":%.1f}\n",
         (unsigned long long)count, (double)ns / count, (double)wakeNs / count, userNs, sysNs);
  return 0;
}

// ---- scaling: THREADS faulting threads, one uffd shared or one per thread, or demand-zero ----

struct lane {
  uint8_t* base;
  uint64_t len;
  const uint8_t* src;
};

static void* lane_main(void* arg) {
  struct lane* l = arg;
  fill(l->base, l->len, l->src);  // as the Node side's region.write of 4 MiB chunks
  return NULL;
}

static int scale(int argc, char** argv) {
  if (argc < 5) return 2;
  int threads = atoi(argv[2]);
  if (threads < 1 || threads > 16) return 2;
  const char* mode = argv[3];
  uint64_t len = strtoull(argv[4], NULL, 0);
  uint64_t part = len / (uint64_t)threads & ~(PAGE - 1);
  len = part * (uint64_t)threads;
  uint8_t* src = warm_source();
  // One mapping cut into one lane per thread, as bench/node-work.js does with one Region.
  uint8_t* region = map_anon(len);
  uint8_t* source = map_anon(len);
  memset(source, 0x33, len);
  struct lane lanes[16];
  static struct handler hs[16];
  int nh = 0;
  for (int t = 0; t < threads; t++) lanes[t] = (struct lane){region + (uint64_t)t * part, part, src};
  if (strcmp(mode, "shared") == 0) {
    int uffd = open_uffd();
    uffd_register(uffd, region, len);
    handler_start(&hs[nh++], uffd, region, len, PAGE, source);
  } else if (strcmp(mode, "per") == 0) {
    for (int t = 0; t < threads; t++) {
      int uffd = open_uffd();
      uffd_register(uffd, lanes[t].base, part);
      handler_start(&hs[nh++], uffd, lanes[t].base, part, PAGE, source + (uint64_t)t * part);
    }
  } else if (strcmp(mode, "zero") != 0) {
    return 2;
  }
  pthread_t th[16];
  uint64_t t0 = now_ns();
  for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, lane_main, &lanes[t]);
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  uint64_t ns = now_ns() - t0;
  for (int i = 0; i < nh; i++) handler_stop(&hs[i]);
  uint64_t faults = len / PAGE;
  printf("{\"threads\":%d,\"ns\":%llu,\"faults\":%llu,\"faultsPerSec\":%.0f}\n", threads,
         (unsigned long long)ns, (unsigned long long)faults, faults / (ns / 1e9));
  return 0;
}

// ---- batching: K faults pending, answered with K copies that each wake, or K DONTWAKE + 1 wake

struct waiter {
  volatile uint8_t* page;
  pthread_barrier_t* start;
};

static void* waiter_main(void* arg) {
  struct waiter* w = arg;
  pthread_barrier_wait(w->start);
  (void)*w->page;
  return NULL;
}

static int batch(int argc, char** argv) {
  if (argc < 5) return 2;
  int k = atoi(argv[2]), rounds = atoi(argv[3]);
  int dontwake = strcmp(argv[4], "dontwake") == 0;
  uint8_t* src = warm_source();
  uint8_t* region = map_anon((uint64_t)k * PAGE * (uint64_t)rounds);
  int uffd = open_uffd();
  uffd_register(uffd, region, (uint64_t)k * PAGE * (uint64_t)rounds);
  uint64_t total = 0;
  struct uffd_msg msgs[64];
  for (int r = 0; r < rounds; r++) {
    uint8_t* base = region + (uint64_t)r * (uint64_t)k * PAGE;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)k + 1);
    pthread_t th[64];
    struct waiter ws[64];
    for (int i = 0; i < k; i++) {
      ws[i] = (struct waiter){base + (uint64_t)i * PAGE, &start};
      pthread_create(&th[i], NULL, waiter_main, &ws[i]);
    }
    pthread_barrier_wait(&start);
    int seen = 0;
    while (seen < k) {
      struct pollfd p = {uffd, POLLIN, 0};
      poll(&p, 1, -1);
      ssize_t n = read(uffd, msgs, sizeof msgs);
      if (n > 0) seen += (int)(n / (ssize_t)sizeof msgs[0]);
    }
    // All K threads are waiting: answer them, and time until the last one has run again.
    uint64_t t0 = now_ns();
    for (int i = 0; i < k; i++) {
      copy_or_wake(uffd, (uint64_t)base + (uint64_t)i * PAGE, src, PAGE,
                   dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0);
    }
    if (dontwake) {
      struct uffdio_range range = {(uint64_t)base, (uint64_t)k * PAGE};
      if (ioctl(uffd, UFFDIO_WAKE, &range) != 0) die("UFFDIO_WAKE");
    }
    for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
    total += now_ns() - t0;
    pthread_barrier_destroy(&start);
  }
  printf("{\"k\":%d,\"rounds\":%d,\"nsPerRound\":%.0f,\"nsPerFault\":%.0f}\n", k, rounds,
         (double)total / rounds, (double)total / rounds / k);
  return 0;
}

static void* idle_main(void* arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

// Context switches of the whole process so far (every thread), as node-work.js reads them
// with process.resourceUsage().
// CPU time of the whole process so far (every thread), in ns, as node-work.js reads it with
// process.cpuUsage(): the load of a busy machine does not stretch it.
static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static long ctx_switches(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

static int fault_direct(int argc, char** argv) {
  if (argc < 3) return 2;
  uint64_t count = strtoull(argv[2], NULL, 0);
  uint8_t* region = map_anon(count * PAGE);
  uint8_t* source = map_anon(count * PAGE);
  memset(source, 0x5a, count * PAGE);
  int uffd = open_uffd();
  uffd_register(uffd, region, count * PAGE);
  static struct handler h;
  handler_start(&h, uffd, region, count * PAGE, PAGE, source);
  usleep(20000);  // the handler is in poll(2), as Node's Worker is in readSync() before the loads
  volatile uint8_t sink = 0;
  long c0 = ctx_switches();
  uint64_t cpu0 = cpu_ns();
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < count; i++) sink += region[i * PAGE];
  uint64_t ns = now_ns() - t0;
  long c1 = ctx_switches();
  uint64_t cpu = cpu_ns() - cpu0;
  handler_stop(&h);
  close(uffd);
  printf("{\"faults\":%llu,\"ns\":%llu,\"nsPerFault\":%.1f,\"cpuNsPerFault\":%.1f,\"ctxPerFault\":%.3f,\"ok\":%d}\n",
         (unsigned long long)count, (unsigned long long)ns, (double)ns / count, (double)cpu / count,
         (double)(c1 - c0) / count, sink == (uint8_t)(0x5a * count));
  return 0;
}

static int wake_touch(int argc, char** argv) {
  if (argc < 4) return 2;
  uint64_t count = strtoull(argv[2], NULL, 0), pages = strtoull(argv[3], NULL, 0);
  uint8_t* region = map_anon(64 * PAGE);
  int uffd = open_uffd();
  uffd_register(uffd, region, 64 * PAGE);
  size_t span = 4096 * PAGE;
  volatile uint8_t* w = map_anon(span);
  memset((void*)w, 1, span);
  volatile uint64_t sink = 0;
  // Pages 7 apart, so that neither the prefetcher nor one huge page covers them.
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    struct uffdio_range r = {(uint64_t)region + (i % 64) * PAGE, PAGE};
    if (ioctl(uffd, UFFDIO_WAKE, &r) != 0) die("UFFDIO_WAKE");
    for (uint64_t j = 0; j < pages; j++) sink += w[(j * 7 % 4096) * PAGE];
  }
  uint64_t t1 = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    for (uint64_t j = 0; j < pages; j++) sink += w[(j * 7 % 4096) * PAGE];
  }
  uint64_t t2 = now_ns();
  printf("{\"pages\":%llu,\"wakeTouchNs\":%.1f,\"touchNs\":%.1f}\n", (unsigned long long)pages,
         (double)(t1 - t0) / count, (double)(t2 - t1) / count);
  return 0;
}

int main(int argc, char** argv) {
  PAGE = (uint64_t)sysconf(_SC_PAGESIZE);
  if (argc < 2) return 2;
  // BASELINE_IDLE_THREADS: start idle threads first. The kernel charges a multi-threaded
  // process more per ioctl (fdget takes a reference when the fd table is shared), and Node
  // always is one: this gives the C loop the same footing.
  int idle = getenv("BASELINE_IDLE_THREADS") ? atoi(getenv("BASELINE_IDLE_THREADS")) : 0;
  for (int i = 0; i < idle; i++) {
    pthread_t t;
    pthread_create(&t, NULL, idle_main, NULL);
  }
  const char* w = argv[1];
  int rc = 2;
  if (strcmp(w, "seq-uffd") == 0) rc = seq(argc, argv, "uffd");
  else if (strcmp(w, "seq-zero") == 0) rc = seq(argc, argv, "zero");
  else if (strcmp(w, "seq-memcpy") == 0) rc = seq(argc, argv, "memcpy");
  else if (strcmp(w, "rand-uffd") == 0) rc = rand_uffd(argc, argv);
  else if (strcmp(w, "ioctl") == 0) rc = ioctl_loop(argc, argv);
  else if (strcmp(w, "fault") == 0) rc = fault_direct(argc, argv);
  else if (strcmp(w, "wake-touch") == 0) rc = wake_touch(argc, argv);
  else if (strcmp(w, "scale") == 0) rc = scale(argc, argv);
  else if (strcmp(w, "batch") == 0) rc = batch(argc, argv);
  if (rc == 2) fprintf(stderr, "baseline: bad arguments\n");
  return rc;
}
