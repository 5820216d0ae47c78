// One thread per userfaultfd: poll {uffd, eventfd}, read uffd_msgs in batches, let the
// native handler answer what it can, and hand the rest to JavaScript in batches through
// one queue (js_batch_queue.h).
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "reader/js_batch_queue.h"
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
};

class FaultReader {
 public:
  static constexpr size_t kBatch = 64;  // messages per read(2)
  static constexpr int kRetryMs = 1;    // poll timeout while faults wait for a retry

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
  // Stop() is Halt() then Release(): Halt waits until the thread has left its loop, and frees
  // nothing, so that a caller can close the uffd in between (Userfaultfd::Shutdown says why);
  // Release joins the thread and lets go of the object.
  void Stop();
  void Halt();
  void Release();
  void Ref();
  void Unref();
  // Any thread: makes the reader ask its handler ShouldYield() again.
  void Nudge() { thread_.Wake(); }

 private:
  friend class JsBatchQueue<FaultReader, Delivery>;
  ~FaultReader() = default;

  void Run();                       // reader thread
  void UpdateYield();               // reader thread
  bool HandleReady(short revents);  // reader thread; false when the reader must stop
  bool ReadBatch();                 // reader thread; false when the reader must stop
  void Dispatch(const uffd_msg* msgs, size_t count);  // reader thread
  void Retry();                                       // reader thread
  void PostBatch();                                   // reader thread

  // JS thread: copies the deliveries into scratch and calls onBatch(count) per scratchful.
  size_t DeliverBatch(napi_env env, napi_value fn, Delivery* batch, size_t count);
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

  // The reader thread's own buffers, reserved by the constructor: it never allocates.
  MappedVector<Delivery> toPost_;  // this read's batch, posted once per read
  MappedVector<uffd_msg> retry_;   // messages to answer after the next read
  MappedVector<uffd_msg> retryNext_;
  uffd_msg buffer_[kBatch];
  bool yielding_ = false;  // reader thread
  bool released_ = false;  // JS thread
};

}  // namespace uffd
