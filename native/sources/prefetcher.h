// A thread that installs a loaded working set into its served range, in recorded order.
// Background mode: while the program runs; demand faults go first, within a bound, and a
// demand fault on a page of the set moves the thread past it (Follow), so that it stays ahead
// of the program instead of filling pages the program has already faulted in. Eager mode: at
// full speed while the range's faults wait (WorkingSets::Holds), so the program (or VM) runs
// only once the set is in. Works on a uffd of another process too: it only issues ioctls on
// the fd, never touches the memory.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "sources/demand_gate.h"
#include "sources/page_bitmap.h"
#include "sources/set_fill.h"
#include "sources/set_order.h"

namespace uffd {

// Counters every working set of one userfaultfd adds to (relaxed atomics; never reset).
struct WorkingSetStats {
  std::atomic<uint64_t> demandFaults{0};    // missing-page faults on served ranges
  std::atomic<uint64_t> prefetched{0};      // pages of sets installed ahead of the program
  std::atomic<uint64_t> prefetchMisses{0};  // demand faults on pages of a set being prefetched
};

class Prefetcher {
 public:
  enum class Mode { kBackground, kEager };
  static constexpr uint64_t kBatchBytes = 512 << 10;  // per UFFDIO_COPY
  static constexpr int kRetryMs = 1;                  // EAGAIN: the reader reads events first
  // Background mode: while demand faults are pending the thread waits at most kYieldUs, then
  // copies for kQuantumNs before it looks again: at least half of its time goes to prefetch,
  // on one CPU as on many. With none pending it looks every kLookNs.
  static constexpr int kYieldUs = 200;
  static constexpr uint64_t kQuantumNs = 200'000;
  static constexpr uint64_t kLookNs = 20'000;
  // Background mode: the thread starts once the program's first demand fault was answered, or
  // after this long: on one CPU it would otherwise run first and delay the program's first
  // byte (the program usually faults right after serve() returns).
  static constexpr int kFirstFaultUs = 1000;
  // A set loaded on this thread (LoadWith): the first fault may come later (serve() returns
  // first, and the program only then runs), and once it is answered its thread runs before
  // the load takes the CPU (on one CPU, the load would otherwise delay the first byte).
  static constexpr int kLoadFirstFaultUs = 5000;
  static constexpr int kLoadAfterAnswerUs = 300;
  // File sources: read-ahead asked (POSIX_FADV_WILLNEED) up to this far ahead, growing from
  // kAdviseStartBytes so that the first demand faults do not queue behind a flood of reads.
  static constexpr uint64_t kAdviseBytes = 16 << 20;
  static constexpr uint64_t kAdviseStartBytes = 256 << 10;
  // Hints start once a page about to be copied is not in the page cache: probed (a one-byte
  // RWF_NOWAIT read) at the first copy and every kProbeEvery copies after. A cached file needs
  // no hints, and a hint per scattered page costs a syscall each (a third of a warm install).
  // Where RWF_NOWAIT is not supported, a read slower than kColdReadNs (it waited for the disk)
  // starts them instead; that one is fooled by preemption on a busy CPU.
  static constexpr uint64_t kProbeEvery = 64;
  static constexpr uint64_t kColdReadNs = 100'000;
  // Positions skipped by Follow, filled after the rest: a program that touched one late page
  // early must not lose the pages before it. Only jumps of at least kMinGap positions count.
  static constexpr int kMaxGaps = 64;
  static constexpr uint64_t kMinGap = 64;
  // ENOENT before anything was installed: the memory is not registered yet (a uffd sent before
  // its owner registered it, as criu restore sends its tasks'); retried this long.
  static constexpr int kRegisterWaitMs = 10000;

  // JS thread.
  Prefetcher(std::shared_ptr<SetOrder> order, std::unique_ptr<SetFill> fill, Mode mode, int fd,
             uint64_t pageSize, DemandGate& gate, WorkingSetStats& stats, PageBitmap& installed);
  ~Prefetcher();  // Stop()
  // JS thread, before Start(): the file the pages are read from (owned from now on) and where
  // the range's first byte (or the compact file's first page) lies in it.
  void AdviseFile(int fd, uint64_t offset) {
    adviseFd_ = fd;
    adviseOffset_ = offset;
  }
  // JS thread, before Start(), background mode: the set is loaded by `load` on the prefetch
  // thread, once the range's first fault is answered (or kFirstFaultUs has passed); a false
  // return ends the thread (the range is then served as without a set).
  void LoadWith(std::function<bool()> load) { load_ = std::move(load); }
  // JS thread. 0, or the errno of creating the thread.
  int Start();
  // JS thread. Idempotent; joins the thread.
  void Stop();
  // Any thread: makes the thread end soon, without waiting for it.
  void Cancel() { stop_.store(true, std::memory_order_release); }
  // Reader thread: the program is past position `pos` of the order (it faulted before it, and
  // what the reader installed ahead of that fault ends there): prefetch goes on from there.
  void Follow(uint64_t pos);
  // Any thread: eager mode, and the set is not in yet (nor given up).
  bool holding() const { return holding_.load(std::memory_order_acquire); }
  Mode mode() const { return mode_; }
  // Any thread: the position in the order the thread has reached.
  uint64_t position() const { return position_.load(std::memory_order_relaxed); }

 private:
  void Run();      // prefetch thread
  void Install();  // prefetch thread: the pass over the order, then the gaps Follow left
  // Prefetch thread: positions [from, to); false when prefetch must stop.
  bool Fill(uint64_t from, uint64_t to, bool follow);
  void Yield();               // prefetch thread, background mode
  void Advise(uint64_t pos);  // prefetch thread
  // Prefetch thread: whether page `page` of the range is in the file's page cache (true when
  // unknown); only while hints are off.
  bool Cached(uint64_t page);
  void Sleep(int ms);

  std::shared_ptr<SetOrder> order_;
  std::unique_ptr<SetFill> fill_;
  Mode mode_;
  int fd_;
  uint64_t pageSize_;
  DemandGate& gate_;
  WorkingSetStats& stats_;
  PageBitmap& installed_;
  int adviseFd_ = -1;
  uint64_t adviseOffset_ = 0;
  bool advising_ = false;       // a page was not cached (always, for a compact file)
  bool probing_ = true;         // RWF_NOWAIT works on adviseFd_ (else: timed reads)
  uint64_t copies_ = 0;         // copies while not advising: when to probe
  uint64_t advisedPos_ = 0;     // positions before it have been advised
  uint64_t doneBytes_ = 0;      // installed so far: how far ahead hints go
  uint64_t lookAt_ = 0;         // Yield(): when to look at the gate again (steady ns)
  uint64_t gaps_[kMaxGaps][2];  // [from, to) positions Follow skipped
  int gapCount_ = 0;
  uint64_t answeredAtStart_;  // the gate's answered() when constructed
  bool registered_ = false;   // prefetch thread: a copy found the memory registered
  int waitedMs_ = 0;          // prefetch thread: for registration, so far
  std::atomic<bool> stop_{false};
  std::atomic<bool> holding_;
  std::atomic<uint64_t> follow_{0};
  std::atomic<uint64_t> position_{0};
  std::thread thread_;
  std::function<bool()> load_;
};

}  // namespace uffd
