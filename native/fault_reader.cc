#include "fault_reader.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"

namespace uffd {

namespace {
constexpr size_t kReserve = 256;  // deliveries kept allocated, so steady state allocates nothing
}

FaultReader::FaultReader(Napi::Env env, int fd, FaultHandler* handler, Napi::Function onBatch,
                         Napi::Uint8Array scratch)
    : fd_(fd), handler_(handler) {
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) ThrowErrno(env, errno, "eventfd");
  scratch_ = Napi::Persistent(scratch.As<Napi::Object>());
  scratchData_ = scratch.Data();
  scratchCapacity_ = scratch.ByteLength() / sizeof(Delivery);
  if (scratchCapacity_ == 0) {
    close(wakeFd_);
    ThrowRangeError(env, "scratch buffer too small");
  }
  pending_.reserve(kReserve);
  delivering_.reserve(kReserve);
  toPost_.reserve(kBatch);
  retry_.reserve(kReserve);
  retryNext_.reserve(kReserve);
  tsfn_ = Tsfn::New(env, onBatch, "userfaultfd-reader", 0, 1, this, Finalize,
                    static_cast<void*>(nullptr));
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (...) {
    close(wakeFd_);
    tsfn_.Release();
    throw;
  }
}

FaultReader::~FaultReader() {
  DropUndelivered(pending_);
  DropUndelivered(delivering_);
  if (wakeFd_ >= 0) close(wakeFd_);
}

void FaultReader::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t ignored = write(wakeFd_, &one, sizeof one);
  (void)ignored;
  if (thread_.joinable()) thread_.join();
  tsfn_.Release();  // Finalize deletes this once the queue has drained
}

void FaultReader::Ref(Napi::Env env) {
  if (!stopped_) tsfn_.Ref(env);
}

void FaultReader::Unref(Napi::Env env) {
  if (!stopped_) tsfn_.Unref(env);
}

// Reader thread.
void FaultReader::Run() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  while (!stopping_.load(std::memory_order_acquire)) {
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents & (POLLERR | POLLNVAL)) {
      Delivery d{};
      d.note = kNoteReaderFailed;
      d.err = (fds[0].revents & POLLNVAL) ? EBADF : EINVAL;
      std::lock_guard<std::mutex> lock(mutex_);
      Post(d);
      Flush();
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP)) && !ReadBatch()) break;
  }
}

// Reader thread: one read(2) of up to kBatch messages, answered or queued for JS.
bool FaultReader::ReadBatch() {
  ssize_t n = read(fd_, buffer_, sizeof buffer_);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    Delivery d{};
    d.note = kNoteReaderFailed;
    d.err = errno;
    std::lock_guard<std::mutex> lock(mutex_);
    Post(d);
    Flush();
    return false;
  }
  size_t count = static_cast<size_t>(n) / sizeof(uffd_msg);
  // Faults that had to wait for a non-cooperative event are answered after it was read.
  retryNext_.swap(retry_);
  Dispatch(buffer_, count);
  Dispatch(retryNext_.data(), retryNext_.size());
  retryNext_.clear();
  if (!toPost_.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Delivery& d : toPost_) Post(d);
    Flush();
    toPost_.clear();
  }
  return true;
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

void FaultReader::Post(const Delivery& d) { pending_.push_back(d); }

void FaultReader::Flush() {
  if (signalled_ || pending_.empty()) return;
  signalled_ = true;
  // NonBlockingCall on an unbounded queue never waits for JS: the reader keeps reading
  // (non-cooperative events block their callers until read) even while JS is busy.
  if (tsfn_.NonBlockingCall() != napi_ok) signalled_ = false;
}

void FaultReader::CallJs(Napi::Env env, Napi::Function fn, FaultReader* self, void*) {
  if (env == nullptr || self == nullptr) return;
  self->DeliverToJs(env, fn);
}

// JS thread.
void FaultReader::DeliverToJs(Napi::Env env, Napi::Function fn) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    delivering_.swap(pending_);
    signalled_ = false;
  }
  if (stopped_) {
    DropUndelivered(delivering_);
    return;
  }
  size_t done = 0;
  while (done < delivering_.size()) {
    size_t n = std::min(scratchCapacity_, delivering_.size() - done);
    memcpy(scratchData_, &delivering_[done], n * sizeof(Delivery));
    done += n;
    // Raw napi: node-addon-api's Call() would build a Napi::Error on failure, and building
    // one aborts the process while a Worker is being torn down (JS cannot run then).
    napi_value arg = Napi::Number::New(env, static_cast<double>(n));
    napi_value result;
    if (napi_call_function(env, env.Undefined(), fn, 1, &arg, &result) != napi_ok) {
      // Either the callback threw (lib/ never lets it: it rethrows on a later tick; any
      // exception left pending here is reported by Node) or JS cannot run any more
      // (environment teardown: the uffd is closed by its cleanup hook). Stop either way.
      break;
    }
  }
  if (done < delivering_.size()) {
    std::vector<Delivery> rest(delivering_.begin() + done, delivering_.end());
    DropUndelivered(rest);
  }
  delivering_.clear();
}

// Fork events carry an fd installed in this process: close those nobody will receive.
void FaultReader::DropUndelivered(std::vector<Delivery>& batch) {
  for (const Delivery& d : batch) {
    if (d.note == kNoteKernel && d.msg.event == UFFD_EVENT_FORK) close(d.msg.arg.fork.ufd);
  }
  batch.clear();
}

void FaultReader::Finalize(Napi::Env, void*, FaultReader* self) { delete self; }

}  // namespace uffd
