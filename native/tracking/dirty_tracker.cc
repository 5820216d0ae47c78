#include "tracking/dirty_tracker.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "uffd/args.h"
#include "uffd/errors.h"

// <linux/fs.h> gained PAGEMAP_SCAN in 6.7; build hosts often have older headers. The layouts
// are the kernel's uapi, exactly.
#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 0x10, struct pm_scan_arg)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif
static_assert(sizeof(pm_scan_arg) == 96, "pm_scan_arg is 96 bytes");
static_assert(sizeof(page_region) == sizeof(uffd::page_region_abi), "page_region layout");

namespace uffd {

namespace {

// /proc/self/pagemap, opened once per process. The pid is kept with it: a forked child must
// not scan its parent's pages through an inherited fd.
std::mutex pagemapMutex;
int pagemapFd = -1;
pid_t pagemapPid = 0;

int PagemapFd() {
  std::lock_guard<std::mutex> lock(pagemapMutex);
  pid_t pid = getpid();
  if (pagemapFd >= 0 && pagemapPid == pid) return pagemapFd;
  if (pagemapFd >= 0) close(pagemapFd);  // inherited across fork(): the parent's
  pagemapFd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  pagemapPid = pid;
  return pagemapFd;
}

constexpr uint64_t kRunsPerScan = 512;  // page_region entries per PAGEMAP_SCAN call

// JS thread. (start: bigint, end: bigint, reset: boolean) -> Float64Array of [offset, length]
// pairs, in bytes from `start`: every written run of [start, end), adjacent runs merged, in as
// many PAGEMAP_SCAN calls as it takes. One array for the whole range, and no object or bigint
// per run: a migration loop calls this every round (docs/dirty-tracking.md).
Napi::Value PagemapScanRuns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t start = ArgU64(info, 0), end = ArgU64(info, 1);
  bool reset = ArgBool(info, 2);
  if (end <= start) ThrowRangeError(env, "empty scan");
  page_region_abi vec[kRunsPerScan];
  std::vector<double> runs;
  uint64_t lastEnd = 0;
  for (uint64_t at = start; at < end;) {
    uint64_t walkEnd = at;
    long n = ScanWritten(at, end, reset, vec, kRunsPerScan, &walkEnd);
    if (n < 0) {
      int err = static_cast<int>(-n);
      // ENOTTY: the pagemap has no such ioctl, so the kernel predates 6.7.
      ThrowErrno(env, err, "PAGEMAP_SCAN", kNoBytes,
                 err == ENOTTY ? "dirty tracking needs Linux 6.7 or later" : nullptr);
    }
    for (long i = 0; i < n; i++) {
      // A run split only by the end of the vector continues the previous one.
      if (!runs.empty() && vec[i].start == lastEnd) {
        runs.back() += static_cast<double>(vec[i].end - vec[i].start);
      } else {
        runs.push_back(static_cast<double>(vec[i].start - start));
        runs.push_back(static_cast<double>(vec[i].end - vec[i].start));
      }
      lastEnd = vec[i].end;
    }
    if (walkEnd <= at) break;  // no progress: nothing more to read
    at = walkEnd;
  }
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, runs.size() * sizeof(double));
  if (!runs.empty()) memcpy(buffer.Data(), runs.data(), runs.size() * sizeof(double));
  return Napi::Float64Array::New(env, runs.size(), buffer, 0);
}

}  // namespace

long ScanWritten(uint64_t start, uint64_t end, bool reset, page_region_abi* out, uint64_t cap,
                 uint64_t* walkEnd) {
  int fd = PagemapFd();
  if (fd < 0) return -errno;
  pm_scan_arg a{};
  a.size = sizeof a;
  // CHECK_WPASYNC: a page outside a WP_ASYNC range fails the scan instead of reading as written.
  a.flags = PM_SCAN_CHECK_WPASYNC | (reset ? PM_SCAN_WP_MATCHING : 0);
  a.start = start;
  a.end = end;
  a.vec = reinterpret_cast<uint64_t>(out);  // page_region_abi is struct page_region
  a.vec_len = cap;
  a.category_mask = PAGE_IS_WRITTEN;
  a.return_mask = PAGE_IS_WRITTEN;
  long rc;
  do rc = ioctl(fd, PAGEMAP_SCAN, &a);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return -errno;
  *walkEnd = a.walk_end;
  return rc;
}

void InitDirtyTracker(Napi::Env env, Napi::Object exports) {
  exports.Set("pagemapScanRuns", Napi::Function::New(env, PagemapScanRuns, "pagemapScanRuns"));
}

}  // namespace uffd
