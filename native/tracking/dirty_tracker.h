// Dirty tracking: the PAGEMAP_SCAN ioctl (Linux 6.7+) on /proc/self/pagemap, which reads which
// pages of a WP_ASYNC write-protected range were written, and can re-protect them in the same
// walk. pagemap is per process: this sees only this process's own memory.
#pragma once
#include <napi.h>

#include <cstdint>

namespace uffd {

struct page_region_abi {  // struct page_region of <linux/fs.h>
  uint64_t start, end, categories;
};

// One PAGEMAP_SCAN call for the written pages of [start, end): fills `out` with up to `cap`
// runs; with `reset`, the runs found are write-protected again. Returns the run count, or
// -errno; *walkEnd is where the walk stopped (end when it covered everything). Any thread.
long ScanWritten(uint64_t start, uint64_t end, bool reset, page_region_abi* out, uint64_t cap,
                 uint64_t* walkEnd);

// JS: pagemapScan(start, end, reset, out: BigUint64Array of 3 words per run)
//     -> { count, walkEnd: bigint }
void InitDirtyTracker(Napi::Env env, Napi::Object exports);

}  // namespace uffd
