// A background thread that sleeps in poll(2) with an eventfd among its fds, so that it can be
// woken (Wake) or stopped and joined (Stop). Closing a polled fd never wakes poll(2): the
// eventfd is the only reliable way to end the wait. Used by the fault reader and the
// fd-passing listener.
#pragma once
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <thread>
#include <utility>

namespace uffd {

class WakeableThread {
 public:
  WakeableThread()
      : wakeFd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), initError_(wakeFd_ < 0 ? errno : 0) {}
  ~WakeableThread() {
    if (wakeFd_ >= 0) close(wakeFd_);
  }
  WakeableThread(const WakeableThread&) = delete;
  WakeableThread& operator=(const WakeableThread&) = delete;

  // The errno of creating the eventfd, 0 if it worked.
  int initError() const { return initError_; }
  int wakeFd() const { return wakeFd_; }

  // JS thread. Runs `body` on a new thread; returns 0 or the errno of pthread_create.
  template <typename Body>
  int Start(Body&& body) {
    try {
      thread_ = std::thread(std::forward<Body>(body));
      return 0;
    } catch (const std::system_error& e) {
      return e.code().value() != 0 ? e.code().value() : EAGAIN;
    }
  }

  // Any thread: interrupts the thread's poll(2).
  void Wake() {
    uint64_t one = 1;
    ssize_t ignored = write(wakeFd_, &one, sizeof one);
    (void)ignored;
  }

  // The background thread, after its poll(2) saw the eventfd readable.
  void Drain() {
    uint64_t v;
    ssize_t ignored = read(wakeFd_, &v, sizeof v);
    (void)ignored;
  }

  // The background thread: whether it must leave its loop.
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  // JS thread: whether Stop() has run.
  bool stopped() const { return stopped_; }

  // JS thread. Makes the thread leave its loop and joins it. Returns false if it had already
  // been stopped (Stop is idempotent).
  bool Stop() {
    if (stopped_) return false;
    stopped_ = true;
    stopping_.store(true, std::memory_order_release);
    Wake();
    if (thread_.joinable()) thread_.join();
    return true;
  }

 private:
  int wakeFd_;
  int initError_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
};

}  // namespace uffd
