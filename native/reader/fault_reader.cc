#include "reader/fault_reader.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "addon.h"
#include "uffd/errors.h"

namespace uffd {

namespace {
constexpr size_t kReserve = 256;  // deliveries kept allocated, so steady state allocates nothing
}

FaultReader::FaultReader(Napi::Env env, int fd, FaultHandler* handler, Napi::Function onBatch,
                         Napi::Uint8Array scratch)
    : fd_(fd), handler_(handler), queue_(this, kReserve) {
  if (thread_.initError() != 0) ThrowErrno(env, thread_.initError(), "eventfd");
  scratch_ = Napi::Persistent(scratch.As<Napi::Object>());
  scratchData_ = scratch.Data();
  scratchCapacity_ = scratch.ByteLength() / sizeof(Delivery);
  if (scratchCapacity_ == 0) ThrowRangeError(env, "scratch buffer too small");
  // Reserved here, on the JS thread: the reader thread never allocates (mapped_vector.h). A
  // batch is one read plus the faults waiting for a retry; those are at most one per thread
  // faulting on this uffd (each waits for its answer), far fewer than kReserve.
  toPost_.reserve(kBatch + kReserve);
  retry_.reserve(kReserve);
  retryNext_.reserve(kReserve);
  if (!queue_.Open(env, onBatch, "userfaultfd-reader")) ThrowErrno(env, ENOMEM, "uv_async_init");
}

// Not in the constructor: once the queue is open (JsBatchQueue::Open), its close callback
// owns this object, and a constructor that threw would free it a second time.
void FaultReader::Start(Napi::Env env) {
  int err = thread_.Start([this] { Run(); });
  if (err == 0) return;
  Stop();
  ThrowErrno(env, err, "pthread_create");
}

void FaultReader::Stop() {
  Halt();
  Release();
}

void FaultReader::Halt() { thread_.Halt(); }

void FaultReader::Release() {
  if (released_) return;
  released_ = true;
  thread_.Stop();    // joins
  scratch_.Reset();  // while the environment is alive: the deletion below comes later
  queue_.Release();  // its close callback deletes this
}

void FaultReader::Ref() { queue_.Ref(); }

void FaultReader::Unref() { queue_.Unref(); }

// Reader thread.
void FaultReader::Run() {
  // The eventfd first: while yielding, the reader polls it alone.
  pollfd fds[2] = {{thread_.wakeFd(), POLLIN, 0}, {fd_, POLLIN, 0}};
  while (!thread_.stopping()) {
    UpdateYield();
    // A fault waiting for a retry (EAGAIN: the kernel was still finishing a non-cooperative
    // event when it was answered) must not wait for another message that may never come.
    int n = poll(fds, yielding_ ? 1 : 2, retry_.empty() ? -1 : kRetryMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) {
      Retry();
      continue;
    }
    if (fds[0].revents != 0) {  // stopped, or nudged: look again
      thread_.Drain();
      continue;
    }
    if (!yielding_ && !HandleReady(fds[1].revents)) break;
  }
}

// Reader thread. A reader that steps aside tells JavaScript, which wakes the faults it was
// holding: they fault again, and the consumer that claimed the uffd reads them.
void FaultReader::UpdateYield() {
  bool yielding = handler_->ShouldYield();
  if (yielding == yielding_) return;
  yielding_ = yielding;
  if (!yielding) return;
  Delivery d{};
  d.note = kNoteYielded;
  queue_.Post(&d, 1);
}

// Reader thread: what poll(2) said of the uffd. False when the reader must stop.
bool FaultReader::HandleReady(short revents) {
  if (revents & (POLLERR | POLLNVAL)) {
    Delivery d{};
    d.note = kNoteReaderFailed;
    d.err = (revents & POLLNVAL) ? EBADF : EINVAL;
    queue_.Post(&d, 1);
    return false;
  }
  return !(revents & (POLLIN | POLLHUP)) || ReadBatch();
}

// Reader thread: one read(2) of up to kBatch messages, answered or queued for JS.
bool FaultReader::ReadBatch() {
  ssize_t n = read(fd_, buffer_, sizeof buffer_);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      Retry();
      return true;
    }
    Delivery d{};
    d.note = kNoteReaderFailed;
    d.err = errno;
    queue_.Post(&d, 1);
    return false;
  }
  size_t count = static_cast<size_t>(n) / sizeof(uffd_msg);
  // Faults that had to wait for a non-cooperative event are answered after it was read.
  retryNext_.swap(retry_);
  Dispatch(buffer_, count);
  Dispatch(retryNext_.data(), retryNext_.size());
  retryNext_.clear();
  PostBatch();
  return true;
}

// Reader thread: answers again the faults that met EAGAIN, with no new message read.
void FaultReader::Retry() {
  if (retry_.empty()) return;
  retryNext_.swap(retry_);
  Dispatch(retryNext_.data(), retryNext_.size());
  retryNext_.clear();
  PostBatch();
}

// Reader thread: hands this batch's deliveries to JS.
void FaultReader::PostBatch() {
  if (toPost_.empty()) return;
  queue_.Post(toPost_.data(), toPost_.size());
  toPost_.clear();
}

// Reader thread.
void FaultReader::Dispatch(const uffd_msg* msgs, size_t count) {
  for (size_t i = 0; i < count; i++) {
    Delivery d;
    d.msg = msgs[i];
    d.note = kNoteKernel;
    d.err = 0;
    switch (handler_->OnMessage(msgs[i], &d)) {
      case Disposition::kToJs:
        toPost_.push_back(d);
        break;
      case Disposition::kRetry:
        retry_.push_back(msgs[i]);
        break;
      case Disposition::kHandled:
        break;
    }
  }
}

// JS thread.
size_t FaultReader::DeliverBatch(napi_env env, napi_value fn, Delivery* batch, size_t count) {
  size_t done = 0;
  while (done < count) {
    size_t n = std::min(scratchCapacity_, count - done);
    memcpy(scratchData_, &batch[done], n * sizeof(Delivery));
    for (size_t i = done; i < done + n; i++) {
      if (IsForkFd(batch[i])) HandOverFd(Napi::Env(env), batch[i].msg.arg.fork.ufd);
    }
    done += n;
    napi_value arg;
    napi_value undefined;
    napi_value result;
    napi_create_uint32(env, static_cast<uint32_t>(n), &arg);
    napi_get_undefined(env, &undefined);
    if (napi_call_function(env, undefined, fn, 1, &arg, &result) != napi_ok) {
      // Either the callback threw (lib/ never lets it: it rethrows on a later tick; any
      // exception left pending here is reported by Node) or JS cannot run any more
      // (environment teardown: the uffd is closed by its cleanup hook). Stop either way.
      break;
    }
  }
  return done;
}

bool FaultReader::IsForkFd(const Delivery& d) {
  return d.note == kNoteKernel && d.msg.event == UFFD_EVENT_FORK;
}

void FaultReader::Discard(Delivery& d) {
  if (IsForkFd(d)) close(d.msg.arg.fork.ufd);
}

}  // namespace uffd
