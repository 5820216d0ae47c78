// What the prefetch threads look at so that demand faults go first without starving prefetch:
// faults the reader is answering now (Begin/End), and faults queued on the uffd but not read
// yet (poll). Any thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>

namespace uffd {

class DemandGate {
 public:
  void Begin() { pending_.fetch_add(1, std::memory_order_acq_rel); }
  void End();
  // Demand faults answered so far (End() calls).
  uint64_t answered() const { return answered_.load(std::memory_order_acquire); }
  // Prefetch thread: waits until more than `seen` demand faults were answered, at most `maxUs`
  // (or until `stop`): a program that runs at once gets its first fault answered first.
  void WaitAnswered(uint64_t seen, const std::atomic<bool>& stop, int maxUs);
  // Prefetch thread: true once no demand fault is pending; false when `maxUs` went by first,
  // or `stop` was set. A bounded wait: a program that faults without pause must not keep
  // prefetch from running (on one CPU it would never run at all).
  bool WaitIdle(int fd, const std::atomic<bool>& stop, int maxUs);
  // Any thread: wakes prefetch threads waiting here (to stop them).
  void NotifyAll();

 private:
  static constexpr int kSliceUs = 50;  // a fault queued after the poll is seen this soon
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> answered_{0};
  std::atomic<int> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace uffd
