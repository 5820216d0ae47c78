// Working sets of served ranges: the pages a program touched first, in order (recorded on the
// reader thread); a loaded set, installed ahead of the program by a prefetch thread and, on a
// demand fault on one of its pages, by the reader along the set's order; and which pages were
// installed so (for refining the set). The file formats live in lib/sources/ only: JavaScript
// passes parsed runs and open files in and takes recorded runs and installed pages out.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "sources/demand_gate.h"
#include "sources/page_bitmap.h"
#include "sources/page_source.h"
#include "sources/prefetcher.h"
#include "sources/set_file.h"
#include "sources/set_fill.h"
#include "sources/set_order.h"
#include "sources/set_pages.h"
#include "uffd/fault_stats.h"

namespace uffd {

// How a served range's working set is set up (JS thread).
struct SetSetup {
  bool record = false;
  std::shared_ptr<SetOrder> order;  // the loaded set; null: no prefetch
  std::vector<uint64_t> loaded;     // one bit per page of the range: the loaded set's pages
  Prefetcher::Mode mode = Prefetcher::Mode::kBackground;
  // The reader's read-ahead along the set: pages installed per demand fault on a page of the
  // set (that page and the ones after it in the order); 0: adaptive, up to kMaxAlongBytes.
  uint32_t window = 0;
  std::unique_ptr<SetFill> readerFill, prefetchFill;  // each thread's own
  int adviseFd = -1;  // owned: the file the prefetch thread reads, for read-ahead hints
  uint64_t adviseOffset = 0;
  // Background mode: the set's file (owned), read by the prefetch thread once the first fault
  // is answered, into `order` (empty until then); -1: the set came in `order` and `loaded`.
  int setFd = -1;
  SetShape shape;
  // Called on the prefetch thread when the file cannot be read or is not a set for the range,
  // or when its page file is refused.
  std::function<void(const SetLoadFailure&)> onLoadFailed;
  // Background mode: the set's page file (owned), checked (set_pages.h) against the source
  // (`pagesSource.fd`, owned) once the set is loaded, then read instead of the source; -1: none.
  int pagesFd = -1;
  PagesSource pagesSource;
};

// The working-set state of one served range.
class WorkingSet {
 public:
  // 1 MiB: a program that follows the set faults each time it catches up with what was
  // installed ahead of it, and on one CPU (the program, this thread and the prefetch thread
  // taking turns) each catch-up costs a fault and several thread switches. With 128 KiB a
  // scattered set of 32768 single pages took ~700 demand faults and ~6,600 switches, 20-40 ms
  // over an eager install; with 1 MiB ~140 and ~2,500 (docs/working-sets.md, issue 23). The
  // window still starts at one page (first byte) and only grows while the program follows.
  static constexpr uint64_t kMaxAlongBytes = 1 << 20;

  // JS thread. Preallocates for every page of the range (bitmaps, and one run per page at
  // worst: reserved address space, committed only as runs are added), so the reader thread
  // never allocates.
  WorkingSet(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize, SetSetup setup,
             int fd, DemandGate& gate, WorkingSetStats& stats);
  ~WorkingSet();

  uint32_t id() const { return id_; }
  bool Contains(uint64_t address) const { return address >= start_ && address - start_ < length_; }
  bool Overlaps(uint64_t start, uint64_t end) const {
    return start < start_ + length_ && end > start_;
  }

  // Reader thread: a missing-page fault at `address`, inside this range. Records its first
  // touch; returns whether the page belongs to the loaded set.
  bool OnFault(uint64_t address, bool write);
  // Reader thread: answers a fault on a page of the loaded set: that page and the next ones in
  // the set's order, one wake when all are in; the prefetch thread then goes on past them.
  // kNotServed when the page is not in the set (or the set is not followed any more):
  // ServedRanges answers it, and reports what fails.
  ServedRanges::Outcome AnswerAlong(int fd, uint64_t address, FaultStats& stats, int* err);
  // Any thread: an eager install is in progress; the range's faults wait for it.
  bool Holds() const { return prefetcher_ && prefetcher_->holding(); }
  // Reader thread: the layout changed under the range: prefetch stops, and so does read-ahead
  // along the set, so that a page the program dropped is never filled again from the set.
  void StopFollowing();
  // JS thread: the runs recorded so far, in first-touch order.
  std::vector<PageRun> Recorded();
  const PageBitmap& installed() const { return installed_; }
  Prefetcher* prefetcher() { return prefetcher_.get(); }

 private:
  static bool Test(const std::vector<uint64_t>& bits, uint64_t i) {
    return (bits[i >> 6] >> (i & 63)) & 1;
  }
  static void Set(std::vector<uint64_t>& bits, uint64_t i) { bits[i >> 6] |= 1ull << (i & 63); }
  uint64_t WindowAt(uint64_t pos);  // reader thread
  bool LoadSet();                   // prefetch thread: SetSetup::setFd
  // Prefetch thread, before the order is ready: SetSetup::pagesFd, if the check passes.
  void UsePagesFile(const std::vector<PageRun>& runs, uint32_t setChecksum);

  uint32_t id_;
  uint64_t start_, length_, pageSize_;
  bool record_;
  WorkingSetStats& stats_;
  std::mutex mutex_;  // the recording, between the reader and JS; no allocation under it
  std::vector<uint64_t> touched_;  // first touches seen
  std::vector<PageRun> runs_;      // capacity: one run per page
  std::vector<uint64_t> loaded_;   // pages of the loaded set (read-only once loadedReady_)
  std::atomic<bool> loadedReady_{false};
  int setFd_;
  SetShape shape_;
  std::function<void(const SetLoadFailure&)> onLoadFailed_;
  int pagesFd_;
  PagesSource pagesSource_;
  PageBitmap installed_;  // pages of the loaded set installed ahead of the program
  std::shared_ptr<SetOrder> order_;
  std::unique_ptr<SetFill> readerFill_;
  uint64_t fixedWindow_;  // pages; 0: adaptive
  uint64_t maxWindow_;    // adaptive
  uint64_t window_ = 1;   // reader thread: the adaptive window
  uint64_t lastEnd_ = 0;  // reader thread: the position after the last window it installed
  std::atomic<bool> following_{true};
  std::unique_ptr<Prefetcher> prefetcher_;
};

// Every working set of one userfaultfd.
class WorkingSets {
 public:
  WorkingSets() = default;
  ~WorkingSets() { Clear(); }  // the prefetch threads use gate_ and stats_: joined first
  // JS thread. Returns 0, or the errno of starting the prefetch thread.
  int Add(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize, int fd, SetSetup setup);
  // JS thread. Stops and joins the range's prefetch thread; false if there was no such set.
  bool Remove(uint32_t id);
  void Clear();
  std::vector<PageRun> Recorded(uint32_t id);
  // JS thread: the pages installed ahead of the program (PageBitmap::CopyTo), or empty when
  // the range has no loaded set.
  std::vector<uint8_t> Installed(uint32_t id);

  // Reader thread: a missing-page fault, before it is answered. In a range with a working set,
  // records it and counts it as a demand fault (and a prefetch miss if the set holds it);
  // returns whether it did.
  bool OnFault(uint64_t address, bool write);
  // Reader thread: WorkingSet::AnswerAlong in the range that holds `address`.
  ServedRanges::Outcome AnswerAlong(int fd, uint64_t address, FaultStats& stats, int* err);
  // Reader thread: whether a fault at `address` waits for an eager install.
  bool Holds(uint64_t address);
  // Reader thread: a demand fault on a served range without a working set, once answered.
  void CountDemand() { stats_.demandFaults.fetch_add(1, std::memory_order_relaxed); }
  // Reader thread: the fault waits for a retry; it is counted again then (recorded once).
  void UncountDemand() { stats_.demandFaults.fetch_sub(1, std::memory_order_relaxed); }
  // Reader thread: the layout changed under [start, end) (REMOVE, UNMAP, REMAP).
  void OnLayoutChange(uint64_t start, uint64_t end);

  DemandGate& gate() { return gate_; }
  WorkingSetStats& stats() { return stats_; }

 private:
  std::unique_ptr<WorkingSet> Take(uint32_t id);

  // The reader takes it for every fault on a served range with a set; its holders allocate and
  // free nothing under it (a thread waiting on malloc would hold the reader: mapped_vector.h).
  std::mutex mutex_;
  std::vector<std::unique_ptr<WorkingSet>> sets_;
  std::atomic<int> count_{0};  // sets_.size(): the reader skips the lock when there are none
  DemandGate gate_;
  WorkingSetStats stats_;
};

}  // namespace uffd
