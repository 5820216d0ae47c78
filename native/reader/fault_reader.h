// One thread per userfaultfd: poll {uffd, eventfd}, read uffd_msgs in batches, let the
// native handler answer what it can, and hand the rest to JavaScript in batches through
// one queue (js_batch_queue.h).
//
// Or, where only JavaScript answers (SetDirect), the JS thread reads the uffd itself from its
// own event loop (loop_reader.h), with no hop, and the thread becomes a watchdog: it reads
// only a message that has stayed unread for kWatchNs while the JS thread read nothing (busy in
// JavaScript, or stopped on a fault of its own), and keeps reading in its stead, by the same
// rules, until the JS thread reads again.
#pragma once
#include <napi.h>
#include <poll.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "reader/cpu_sharing.h"
#include "reader/js_batch_queue.h"
#include "reader/loop_reader.h"
#include "reader/mapped_vector.h"
#include "reader/wakeable_thread.h"
#include "uffd/kernel_abi.h"

namespace uffd {

// What JavaScript receives per message: the raw kernel message and a note from the native
// side. Laid out for lib/core/events.ts (40 bytes, little-endian).
struct Delivery {
  uffd_msg msg;
  int32_t note;  // Note below
  int32_t err;   // errno behind the note, 0 if none
};
static_assert(sizeof(Delivery) == 40, "Delivery is 40 bytes");

enum Note : int32_t {
  kNoteKernel = 0,                // a kernel event for the JS handlers
  kNoteSelfFaultAnswered = 1,     // the JS thread faulted; the guard answered it
  kNoteSourceFailed = 2,          // a native page source could not answer; err says why
  kNoteReaderFailed = 3,          // reading the uffd failed; the reader stopped
  kNoteSourceFailedAnswered = 4,  // a page source failed on the JS thread's own fault; the
                                  // guard answered it (onSelfFault), err says why it failed
  kNoteSelfFaultFallback = 5,  // the JS thread faulted; POISON failed (err), a zero page answered
  kNoteYielded = 6,            // the reader stopped reading: a consumer elsewhere claims the uffd
  kNoteFilled = 7,  // the background fill ended: err 0 (every page in), ESRCH (the memory's
                    // owner has gone) or why it failed
};

enum class Disposition { kToJs, kHandled, kRetry };

class FaultHandler {
 public:
  virtual ~FaultHandler() = default;
  // Called on the reader thread for every message. May rewrite *out (note, err) when the
  // message was handled natively but JS must hear about it (returns kToJs then).
  virtual Disposition OnMessage(const uffd_msg& msg, Delivery* out) = 0;
  // Reader thread, before each wait: whether to leave the uffd's messages to another reader
  // (reader_claims.h). The reader is nudged when the answer may have changed.
  virtual bool ShouldYield() = 0;
  // Reader thread, while no message waits: one slice of background work (the fill). Returns
  // kMore while more remains (the reader then polls without waiting), kLater when a message
  // must be read first, kIdle when there is none. May fill *out for JS (returns kIdle then,
  // and true in *post).
  enum class Work { kIdle, kMore, kLater };
  virtual Work Background(Delivery* out, bool* post) { return Work::kIdle; }
  // Reader thread: a lock held across each read(2) and OnRead (null: none).
  virtual std::mutex* ReadLock() { return nullptr; }
  // Reader thread, under ReadLock(): the messages a read(2) returned, before they are handled.
  virtual void OnRead(const uffd_msg* msgs, size_t count) {}
};

class FaultReader : private LoopReader::Target {
 public:
  static constexpr size_t kBatch = 64;  // messages per read(2)
  static constexpr int kRetryMs = 1;    // poll timeout while faults wait for a retry
  // How long a message may wait unread while the JS thread reads the uffd, before the thread
  // reads it instead: the delay a fault of the JS thread itself sees (the self-fault guard
  // answers it then), and the watchdog's wake-ups while faults keep coming (one per period).
  static constexpr long kWatchNs = 1000000;
  // Reads the JS thread makes after a batch it answered, before it goes back to its loop: a
  // faulting thread woken by the answer on the same CPU (one CPU, or a container held to one)
  // has often faulted again by then, and its message is read with no epoll turn. A read that
  // finds nothing ends the turn (no spin); bounded so that other I/O is not held up.
  static constexpr int kLoopRereads = 8;

  // JS thread only. `onBatch(count)` is called with the deliveries copied into `scratch`.
  FaultReader(Napi::Env env, int fd, FaultHandler* handler, Napi::Function onBatch,
              Napi::Uint8Array scratch);
  FaultReader(const FaultReader&) = delete;
  FaultReader& operator=(const FaultReader&) = delete;

  // JS thread only. Starts the reader thread; on failure the reader has stopped itself (and is
  // deleted by its queue) and a UffdError is thrown.
  void Start(Napi::Env env);
  // JS thread only. Stop wakes the thread through the eventfd and joins it; idempotent. The
  // object then deletes itself, on the JS thread, once its queue's uv handle has closed.
  // Stop() is Halt() then Release(): Halt closes the loop watch (SetDirect), waits until the
  // thread has left its loop, and frees nothing, so that a caller can close the uffd in between
  // (Userfaultfd::Shutdown says why); Release joins the thread and lets go of the object.
  void Stop();
  void Halt();
  void Release();
  void Ref();
  void Unref();
  // JS thread. Whether the JS thread reads the uffd itself (the thread only watches), as
  // decided by the owner; false by default. Returns whether it does: it cannot where libuv
  // refuses the fd.
  bool SetDirect(Napi::Env env, bool direct);
  bool direct() const { return direct_.load(std::memory_order_relaxed); }  // JS thread
  // Any thread: makes the reader ask its handler ShouldYield() again.
  void Nudge() { thread_.Wake(); }

 private:
  friend class JsBatchQueue<FaultReader, Delivery>;
  ~FaultReader() = default;  // JS thread (the queue's close callback)

  void Run();                                   // reader thread
  bool WaitForJs(pollfd* fds, uint64_t* seen);  // reader thread: true when JS is not reading
  void UpdateYield();                           // reader thread
  bool HandleReady(short revents);              // reader thread; false when the reader must stop
  bool ReadBatch();                             // reader thread; false when the reader must stop
  ssize_t ReadMessages(uffd_msg* buf, size_t size);  // either thread, readMutex_ held
  // Under readMutex_: answers or queues the messages; kRetry ones go to `retry`, or, with
  // none (the JS thread), are woken to fault again.
  void Dispatch(const uffd_msg* msgs, size_t count, MappedVector<Delivery>& out,
                MappedVector<uffd_msg>* retry);
  void Retry();          // reader thread
  void RetryLocked();    // reader thread, readMutex_ held
  void PostBatch();      // reader thread
  void RunBackground();  // reader thread

  // JS thread, from the loop: reads and delivers, as the thread would.
  void OnReadable(napi_env env, int status) override;
  bool ReadOnLoop();  // JS thread: one read into jsBatch_; true when it holds any
  // JS thread: copies the deliveries into scratch and calls onBatch(count) per scratchful
  // (from the loop, `fromLoop`: in a callback scope of its own).
  size_t DeliverBatch(napi_env env, napi_value fn, Delivery* batch, size_t count,
                      bool fromLoop = false);
  // Any thread: a fork event carries an fd installed in this process; close it if nobody
  // will receive it.
  static void Discard(Delivery& d);
  static bool IsForkFd(const Delivery& d);  // the record carries a fork event's new uffd

  int fd_;
  FaultHandler* handler_;
  Napi::ObjectReference scratch_;
  uint8_t* scratchData_;
  size_t scratchCapacity_;  // deliveries that fit in scratch

  WakeableThread thread_;
  JsBatchQueue<FaultReader, Delivery> queue_;

  // Held by whichever thread reads, from its read(2) until what it read is answered or queued
  // for JavaScript: deliveries then reach JavaScript in the order the kernel gave them. Never
  // held while JavaScript runs, nor while waiting for anything the JS thread does, and nothing
  // under it calls malloc, on either thread: a JS thread waiting under it for a forking
  // thread's malloc locks would keep the reader from the FORK event the fork waits for.
  std::mutex readMutex_;
  // The reader thread's own buffers, reserved by the constructor: it never allocates
  // (mapped_vector.h).
  MappedVector<Delivery> toPost_;  // this read's batch, posted once per read
  MappedVector<uffd_msg> retry_;   // messages to answer after the next read
  MappedVector<uffd_msg> retryNext_;
  uffd_msg buffer_[kBatch];  // the read(2) buffer
  bool yielding_ = false;    // reader thread
  // Reader thread: background work may remain (FaultHandler::Background), and whether it
  // waits for a message to be read first.
  bool background_ = true;
  bool backgroundLater_ = false;
  CpuSharing cpuSharing_;  // reader thread, while background work remains
  bool released_ = false;  // JS thread

  // The JS thread's reading (SetDirect).
  std::atomic<bool> direct_{false};  // written by the JS thread (release), read by the reader
  // Bumped (release) each time the JS thread is free to take messages: a loop read, or a
  // delivery from the queue. The watchdog compares two loads (acquire) kWatchNs apart.
  std::atomic<uint64_t> jsTurns_{0};
  LoopReader* loop_ = nullptr;       // JS thread; cleared by LoopReader::Close
  bool refed_ = true;                // JS thread: the loop watch follows the queue's ref
  Napi::FunctionReference onBatch_;  // JS thread; reset at Release()
  MappedVector<Delivery> jsBatch_;   // JS thread's deliveries of one loop read (under readMutex_)
  uffd_msg jsBuffer_[kBatch];        // JS thread's read(2) buffer
  bool callFailed_ = false;          // JS thread: a call of onBatch failed in this loop turn
};

}  // namespace uffd
