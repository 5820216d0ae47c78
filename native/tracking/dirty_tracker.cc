#include "tracking/dirty_tracker.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

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

// JS thread. (start: bigint, end: bigint, reset: boolean, out: BigUint64Array)
//   -> { count: number, walkEnd: bigint }
Napi::Value PagemapScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t start = ArgU64(info, 0), end = ArgU64(info, 1);
  bool reset = ArgBool(info, 2);
  if (!info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
    ThrowTypeError(env, "out must be a BigUint64Array");
  }
  Napi::BigUint64Array out = info[3].As<Napi::BigUint64Array>();
  uint64_t cap = out.ElementLength() / 3;
  if (cap == 0 || end <= start) ThrowRangeError(env, "empty scan");
  uint64_t walkEnd = start;
  long n =
      ScanWritten(start, end, reset, reinterpret_cast<page_region_abi*>(out.Data()), cap, &walkEnd);
  if (n < 0) {
    int err = static_cast<int>(-n);
    // ENOTTY: the pagemap has no such ioctl, so the kernel predates 6.7.
    ThrowErrno(env, err, "PAGEMAP_SCAN", kNoBytes,
               err == ENOTTY ? "dirty tracking needs Linux 6.7 or later" : nullptr);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("count", Napi::Number::New(env, static_cast<double>(n)));
  r.Set("walkEnd", Napi::BigInt::New(env, walkEnd));
  return r;
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
  exports.Set("pagemapScan", Napi::Function::New(env, PagemapScan, "pagemapScan"));
}

}  // namespace uffd
