// A background thread that sleeps in poll(2) with an eventfd among its fds, so that it can be
// woken (Wake) or stopped and joined (Stop). Closing a polled fd never wakes poll(2): the
// eventfd is the only reliable way to end the wait. Used by the fault reader and the
// fd-passing listener.
//
// A plain pthread, not a std::thread: std::thread hands its body to the new thread in a heap
// object that the new thread frees when it ends. The fault reader must never call malloc or free
// (mapped_vector.h), not even on its way out: a reader whose exit waits for a forking thread's
// malloc locks keeps the uffd open (Stop joins it before the close), and the fork waits for that
// uffd's FORK event.
#pragma once
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <utility>

namespace uffd {

class WakeableThread {
 public:
  WakeableThread()
      : wakeFd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        doneFd_(eventfd(0, EFD_CLOEXEC)),
        initError_(wakeFd_ < 0 || doneFd_ < 0 ? errno : 0) {}
  ~WakeableThread() {
    if (wakeFd_ >= 0) close(wakeFd_);
    if (doneFd_ >= 0) close(doneFd_);
  }
  WakeableThread(const WakeableThread&) = delete;
  WakeableThread& operator=(const WakeableThread&) = delete;

  // The errno of creating the eventfds, 0 if it worked.
  int initError() const { return initError_; }
  int wakeFd() const { return wakeFd_; }

  // JS thread. Runs `body` on a new thread; returns 0 or the errno of pthread_create. `body`
  // is kept here (allocated on this thread) and only called there.
  template <typename Body>
  int Start(Body&& body) {
    body_ = std::forward<Body>(body);
    int err = pthread_create(&thread_, nullptr, &WakeableThread::Trampoline, this);
    if (err == 0) started_ = true;
    return err;
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

  // JS thread: whether Halt() (or Stop()) has run.
  bool stopped() const { return halted_; }

  // JS thread. Makes the thread leave its loop and waits until its body has returned, without
  // joining it: pthread_join frees the thread's TLS with free(), and a caller may need the body
  // gone (the fd it used closed) before it may wait on malloc (Userfaultfd::Shutdown). Returns
  // false if it had already run.
  bool Halt() {
    if (halted_) return false;
    halted_ = true;
    stopping_.store(true, std::memory_order_release);
    Wake();
    if (started_) {
      uint64_t v;
      while (read(doneFd_, &v, sizeof v) < 0 && errno == EINTR) {
      }
    }
    return true;
  }

  // JS thread. Halt(), then joins the thread. Idempotent; false if it had already been stopped.
  bool Stop() {
    bool first = Halt();
    if (started_ && !joined_) {
      pthread_join(thread_, nullptr);
      joined_ = true;
    }
    return first;
  }

 private:
  static void* Trampoline(void* arg) {
    auto* self = static_cast<WakeableThread*>(arg);
    self->body_();
    uint64_t one = 1;  // the body is done: Halt() may return
    ssize_t ignored = write(self->doneFd_, &one, sizeof one);
    (void)ignored;
    return nullptr;
  }

  int wakeFd_;
  int doneFd_;  // blocking: Halt() waits on it
  int initError_;
  std::function<void()> body_;  // written before the thread starts
  pthread_t thread_{};
  std::atomic<bool> stopping_{false};
  bool started_ = false;  // JS thread
  bool halted_ = false;   // JS thread
  bool joined_ = false;   // JS thread
};

}  // namespace uffd
