#include "sources/demand_gate.h"

#include <poll.h>

#include <algorithm>
#include <chrono>

namespace uffd {

void DemandGate::End() {
  answered_.fetch_add(1, std::memory_order_acq_rel);
  // Lock only when a prefetch thread waits: the reader's fast path stays two atomics.
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      waiters_.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    cv_.notify_all();
  }
}

void DemandGate::NotifyAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  cv_.notify_all();
}

// Prefetch thread.
void DemandGate::WaitAnswered(uint64_t seen, const std::atomic<bool>& stop, int maxUs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(maxUs);
  std::unique_lock<std::mutex> lock(mutex_);
  waiters_.fetch_add(1, std::memory_order_acq_rel);
  while (answered() <= seen && !stop.load(std::memory_order_acquire) &&
         std::chrono::steady_clock::now() < deadline) {
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                std::chrono::microseconds(kSliceUs)));
  }
  waiters_.fetch_sub(1, std::memory_order_acq_rel);
}

// Prefetch thread. poll(2) with a zero timeout sees faults queued on the uffd that the reader
// has not read yet; the counter sees those it is answering.
bool DemandGate::WaitIdle(int fd, const std::atomic<bool>& stop, int maxUs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(maxUs);
  for (;;) {
    if (stop.load(std::memory_order_acquire)) return false;
    pollfd p{fd, POLLIN, 0};
    bool queued = poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
    if (!queued && pending_.load(std::memory_order_acquire) == 0) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::unique_lock<std::mutex> lock(mutex_);
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    cv_.wait_until(lock, std::min(deadline, now + std::chrono::microseconds(kSliceUs)));
    waiters_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace uffd
