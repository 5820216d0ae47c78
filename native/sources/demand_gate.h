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
  // Prefetch thread: true once no demand fault is pending; false when `maxUs` went by first,
  // or `stop` was set. A bounded wait: a program that faults without pause must not keep
  // prefetch from running (on one CPU it would never run at all).
  bool WaitIdle(int fd, const std::atomic<bool>& stop, int maxUs);
  // Any thread: wakes prefetch threads waiting here (to stop them).
  void NotifyAll();

 private:
  static constexpr int kSliceUs = 50;  // a fault queued after the poll is seen this soon
  std::atomic<int> pending_{0};
  std::atomic<int> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace uffd
