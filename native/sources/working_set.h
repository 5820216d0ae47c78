// Working sets of served ranges: the pages a program touched first, in order (recorded on the
// reader thread), the pages of a loaded set (for counting the faults prefetch had not reached),
// and the prefetch threads that fill loaded sets. The file format lives in
// lib/sources/working-set.ts only: JavaScript passes parsed runs in and takes recorded runs out.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "sources/page_source.h"

namespace uffd {

// Pages [first, first + count) of a range, in the order they were first touched. write: the
// first touch was a write fault.
struct PageRun {
  uint32_t first;
  uint32_t count;
  uint32_t write;
};

// Counters every working set of one userfaultfd adds to (relaxed atomics; never reset).
struct WorkingSetStats {
  std::atomic<uint64_t> demandFaults{0};    // missing-page faults on served ranges
  std::atomic<uint64_t> prefetched{0};      // pages the prefetch threads installed
  std::atomic<uint64_t> prefetchMisses{0};  // demand faults on pages of a set being prefetched
};

// What the prefetch threads look at before each batch so that demand faults go first: faults
// the reader is answering now (Begin/End), and faults queued on the uffd but not read yet
// (poll). Any thread.
class DemandGate {
 public:
  void Begin() { pending_.fetch_add(1, std::memory_order_acq_rel); }
  void End();
  // Prefetch thread: returns once no demand fault is pending, or `stop` is set. Waits on a
  // condition variable in slices of kSliceUs, so a fault read after the check is seen soon.
  void WaitIdle(int fd, const std::atomic<bool>& stop);
  // Any thread: wakes prefetch threads waiting here (to stop them).
  void NotifyAll();

 private:
  static constexpr int kSliceUs = 200;
  std::atomic<int> pending_{0};
  std::atomic<int> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

class Prefetcher;

// The working-set state of one served range.
class WorkingSet {
 public:
  // JS thread. Preallocates for every page of the range (a bitmap, and one run per page at
  // worst: reserved address space, committed only as runs are added), so the reader thread
  // never allocates.
  WorkingSet(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize, bool record,
             const std::vector<PageRun>& loaded);
  ~WorkingSet();

  uint32_t id() const { return id_; }
  uint64_t start() const { return start_; }
  uint64_t pageSize() const { return pageSize_; }
  bool Contains(uint64_t address) const { return address >= start_ && address - start_ < length_; }
  bool Overlaps(uint64_t start, uint64_t end) const {
    return start < start_ + length_ && end > start_;
  }

  // Reader thread: a missing-page fault at `address`, inside this range. Records its first
  // touch; returns whether the page belongs to the loaded set.
  bool OnFault(uint64_t address, bool write);
  // JS thread: the runs recorded so far, in first-touch order.
  std::vector<PageRun> Recorded();

  std::unique_ptr<Prefetcher> prefetcher;

 private:
  static bool Test(const std::vector<uint64_t>& bits, uint64_t i) {
    return (bits[i >> 6] >> (i & 63)) & 1;
  }
  static void Set(std::vector<uint64_t>& bits, uint64_t i) { bits[i >> 6] |= 1ull << (i & 63); }

  uint32_t id_;
  uint64_t start_, length_, pageSize_;
  bool record_;
  std::mutex mutex_;  // the recording, between the reader and JS; no allocation under it
  std::vector<uint64_t> touched_;  // first touches seen
  std::vector<PageRun> runs_;      // capacity: one run per page
  std::vector<uint64_t> loaded_;   // pages of the loaded set (read-only after construction)
};

// Every working set of one userfaultfd.
class WorkingSets {
 public:
  WorkingSets() = default;
  ~WorkingSets() { Clear(); }  // the prefetch threads use gate_ and stats_: joined first
  // JS thread. `source` is the prefetch thread's own source (never used by the reader);
  // `adviseFd` (owned; -1 if none) the file behind it, whose range starts at `fileOffset`.
  // Returns 0, or the errno of starting the prefetch thread.
  int Add(std::unique_ptr<WorkingSet> set, int fd, std::shared_ptr<PageSource> source,
          std::vector<PageRun> loaded, int adviseFd = -1, uint64_t fileOffset = 0);
  // JS thread. Stops and joins the range's prefetch thread; false if there was no such set.
  bool Remove(uint32_t id);
  void Clear();
  std::vector<PageRun> Recorded(uint32_t id);
  // JS thread: pages of the loaded set the prefetch thread has gone past, in set order
  // (installed, or found present); -1 when the range has no prefetch.
  int64_t PrefetchCursor(uint32_t id);

  // Reader thread: a missing-page fault, before it is answered. In a range with a working set,
  // records it and counts it as a demand fault (and a prefetch miss if the set holds it);
  // returns whether it did.
  bool OnFault(uint64_t address, bool write);
  // Reader thread: a demand fault on a served range without a working set, once answered.
  void CountDemand() { stats_.demandFaults.fetch_add(1, std::memory_order_relaxed); }
  // Reader thread: the fault waits for a retry; it is counted again then (recorded once).
  void UncountDemand() { stats_.demandFaults.fetch_sub(1, std::memory_order_relaxed); }
  // Reader thread: the layout changed under [start, end) (REMOVE, UNMAP, REMAP): prefetch there
  // stops, so that a page the program dropped is never filled again from the set.
  void OnLayoutChange(uint64_t start, uint64_t end);

  DemandGate& gate() { return gate_; }
  WorkingSetStats& stats() { return stats_; }
  bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }

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
