// A loaded working set in its recorded order: where each position of the order lies (for the
// prefetch thread, which walks it), and where each page stands in it (for the reader thread,
// which moves the prefetch thread to a demand fault's position).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace uffd {

// Pages [first, first + count) of a range, in the order they were first touched. write: the
// first touch was a write fault.
struct PageRun {
  uint32_t first;
  uint32_t count;
  uint32_t write;
};

class SetOrder {
 public:
  // JS thread: runs from [first, count, flags] words (lib/sources/working-set.ts checkRuns says
  // the same rule): none empty or outside a range of `pages` pages, none overlapping another,
  // flags in byte 0 (bit 0: write), age in byte 1, bytes 2-3 zero. Sets *bad to the first bad
  // run's index (or -1) and `pagesOf` to one bit per page of the set.
  static std::vector<PageRun> FromWords(const uint32_t* words, size_t count, uint64_t pages,
                                        std::vector<uint64_t>* pagesOf, int64_t* bad);

  // JS thread: O(runs). `runs` lie inside the range (checked in userfaultfd.cc).
  explicit SetOrder(std::vector<PageRun> runs) { Load(std::move(runs)); }
  // An order loaded later (LoadSetFile), empty until then.
  SetOrder() : starts_{0} {}
  // Once, before BuildIndex and on the thread that builds it: the runs, O(runs).
  void Load(std::vector<PageRun> runs);

  size_t runCount() const { return runs_.size(); }
  const PageRun& run(size_t i) const { return runs_[i]; }
  // Position in the order of run i's first page; runStart(runCount()) == pages().
  uint64_t runStart(size_t i) const { return starts_[i]; }
  uint64_t pages() const { return starts_.back(); }
  // The run that holds position `pos` (runCount() when pos >= pages()).
  size_t RunAt(uint64_t pos) const;

  // Once, on one thread (the prefetch thread, off the JS thread's serve()): sorts the runs by
  // page for PositionOf. Then ready() turns true.
  void BuildIndex();
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Any thread, once ready(): the position of `page` in the order, or -1 if not in the set.
  int64_t PositionOf(uint64_t page) const;

 private:
  std::vector<PageRun> runs_;
  std::vector<uint64_t> starts_;  // runs + 1 prefix sums of page counts
  std::vector<uint32_t> byPage_;  // run indexes sorted by first page
  std::atomic<bool> ready_{false};
};

}  // namespace uffd
