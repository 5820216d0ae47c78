// A sparse view of another source: runs of it placed at offsets of the served range, zeros
// between them. A lazy-restore image is such a view: each run of pages a pagemap lists is at
// its offset in the pages file, and pages it does not list were never touched (zeros).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "sources/page_source.h"

namespace uffd {

// Bytes [at, at + length) of the view are the backing source's [offset, offset + length).
struct SparseRun {
  uint64_t at;
  uint64_t length;
  uint64_t offset;
};

// JS thread. `runs` sorted by `at`, not overlapping, none empty (checked in lib/). Bytes a run
// places past the backing source's end read as zeros.
std::unique_ptr<PageSource> MakeSparseSource(std::shared_ptr<PageSource> backing,
                                             std::vector<SparseRun> runs);

}  // namespace uffd
