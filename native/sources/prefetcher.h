// A thread that fills a loaded working set into a served range ahead of the program: large
// UFFDIO_COPYs with DONTWAKE, one UFFDIO_WAKE per run, in the recorded order, yielding to
// demand faults between batches. Works on a uffd of another process too: it only issues
// ioctls on the fd, never touches the memory.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "sources/page_source.h"
#include "sources/working_set.h"

namespace uffd {

class Prefetcher {
 public:
  static constexpr uint64_t kBatchBytes = 512
                                          << 10;  // per UFFDIO_COPY; the gate is checked between
  static constexpr int kRetryMs = 1;              // EAGAIN: wait for the reader to read events
  static constexpr uint64_t kAdviseBytes = 16
                                           << 20;  // file sources: read-ahead asked this far ahead

  // JS thread. `runs` are page indexes of the range at `start`; they lie inside it (checked
  // in lib/sources/working-set.ts).
  Prefetcher(int fd, uint64_t start, uint64_t pageSize, std::shared_ptr<PageSource> source,
             std::vector<PageRun> runs, DemandGate& gate, WorkingSetStats& stats);
  ~Prefetcher();  // Stop()
  // JS thread. 0, or the errno of creating the thread.
  int Start();
  // JS thread. Idempotent; joins the thread.
  void Stop();
  // Any thread: makes the thread end soon, without waiting for it.
  void Cancel() { stop_.store(true, std::memory_order_release); }
  // JS thread, before Start(): a file source's fd (owned from now on) and the file offset of the
  // range's first byte. The thread then asks the kernel to read the next runs ahead
  // (POSIX_FADV_WILLNEED): a cold file is read with many requests in flight, not one at a time.
  void AdviseFile(int fd, uint64_t offset) {
    adviseFd_ = fd;
    adviseOffset_ = offset;
  }
  // Pages of the set gone past, in set order.
  uint64_t cursor() const { return cursor_.load(std::memory_order_relaxed); }

 private:
  void Run();  // prefetch thread
  // Prefetch thread: fills [dst, dst + len) of run memory; false when prefetch must stop.
  bool FillRun(uint64_t dst, uint64_t len);
  // Prefetch thread: one UFFDIO_COPY (or ZEROPAGE past the source's end), DONTWAKE.
  IoctlResult CopyBatch(uint64_t dst, uint64_t len);
  void Sleep(int ms);
  // Prefetch thread: WILLNEED for the runs after `run` up to kAdviseBytes ahead.
  void AdviseAhead(size_t run);

  int fd_;
  uint64_t start_, pageSize_;
  std::shared_ptr<PageSource> source_;
  std::vector<PageRun> runs_;
  DemandGate& gate_;
  WorkingSetStats& stats_;
  std::vector<uint8_t> tailPage_;
  int adviseFd_ = -1;
  uint64_t adviseOffset_ = 0;
  size_t advisedRuns_ = 0;  // runs [0, advisedRuns_) have been advised
  uint64_t advisedBytes_ = 0, doneBytes_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> cursor_{0};
  std::thread thread_;
};

}  // namespace uffd
