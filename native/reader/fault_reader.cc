#include "reader/fault_reader.h"

#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "addon.h"
#include "uffd/errors.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

namespace {
constexpr size_t kReserve = 256;  // deliveries kept allocated, so steady state allocates nothing
const uint64_t kPageSize = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}  // namespace

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
  jsBatch_.reserve(kBatch + kReserve);
  onBatch_ = Napi::Persistent(onBatch);
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

void FaultReader::Halt() {
  // The loop watch first: from here on only the thread reads, until it has left its loop.
  if (loop_ != nullptr) loop_->Close();
  direct_.store(false, std::memory_order_release);
  thread_.Halt();
}

void FaultReader::Release() {
  if (released_) return;
  released_ = true;
  Halt();            // (Stop, or a failed Start, has not halted it yet)
  thread_.Stop();    // joins
  scratch_.Reset();  // while the environment is alive: the deletion below comes later
  onBatch_.Reset();
  queue_.Release();  // its close callback deletes this
}

void FaultReader::Ref() {
  refed_ = true;
  if (loop_ != nullptr) loop_->Ref();
  queue_.Ref();
}

void FaultReader::Unref() {
  refed_ = false;
  if (loop_ != nullptr) loop_->Unref();
  queue_.Unref();
}

bool FaultReader::SetDirect(Napi::Env env, bool direct) {
  if (thread_.stopped()) return false;
  if (direct && loop_ == nullptr && LoopReader::Open(env, fd_, this, &loop_) != nullptr) {
    if (!refed_) loop_->Unref();
  }
  if (loop_ == nullptr) direct = false;
  if (direct == direct_.load(std::memory_order_relaxed)) return direct;
  if (direct) {
    loop_->Start();
  } else {
    loop_->Stop();
  }
  direct_.store(direct, std::memory_order_release);
  thread_.Wake();  // the thread reads, or watches, from now on
  return direct;
}

// Reader thread.
void FaultReader::Run() {
  // The eventfd first: while yielding, the reader polls it alone.
  pollfd fds[2] = {{thread_.wakeFd(), POLLIN, 0}, {fd_, POLLIN, 0}};
  // Reading in the stead of a JS thread that stopped reading; until it reads again (its turns
  // then differ from standInFrom).
  bool standIn = false;
  uint64_t standInFrom = 0;
  while (!thread_.stopping()) {
    if (background_) cpuSharing_.LeaveIfShared();
    UpdateYield();
    bool direct = direct_.load(std::memory_order_acquire);
    if (standIn && (!direct || jsTurns_.load(std::memory_order_acquire) != standInFrom)) {
      standIn = false;
    }
    // Background work (the fill) runs below, between polls: the JS thread does none of it.
    if (direct && !standIn && !yielding_ && retry_.empty() && !background_) {
      standIn = WaitForJs(fds, &standInFrom);
      if (standIn && !ReadBatch()) break;
      continue;
    }
    // A fault waiting for a retry (EAGAIN: the kernel was still finishing a non-cooperative
    // event when it was answered) must not wait for another message that may never come.
    // Background work goes on between polls that do not wait: messages always come first.
    bool work = background_ && !yielding_;
    int timeout = !retry_.empty() || (work && backgroundLater_) ? kRetryMs : work ? 0 : -1;
    int n = poll(fds, yielding_ ? 1 : 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) {
      Retry();
      if (work) RunBackground();
      continue;
    }
    if (fds[0].revents != 0) {  // stopped, or nudged (new background work, a claim): look again
      thread_.Drain();
      background_ = true;
      continue;
    }
    backgroundLater_ = false;  // a message was read: what waited for it may go on
    if (!yielding_ && !HandleReady(fds[1].revents)) break;
  }
}

// Reader thread, while the JS thread reads the uffd. Sleeps until a message is queued, then
// gives the JS thread kWatchNs to take it. True when it is still queued and the JS thread has
// not read since (busy in JavaScript, or stopped on a fault of its own): the caller then reads
// in its stead. `*seen` gets the JS thread's turns at the start of the wait. While faults keep
// coming this wakes once per kWatchNs, not once per fault.
bool FaultReader::WaitForJs(pollfd* fds, uint64_t* seen) {
  int n = poll(fds, 2, -1);
  if (n <= 0) return false;   // EINTR: look again
  if (fds[0].revents != 0) {  // nudged (new background work, a claim) or stopped: look again
    thread_.Drain();
    background_ = true;
    return false;
  }
  // A failed fd is for the reading path to report (HandleReady).
  if (fds[1].revents & (POLLERR | POLLNVAL)) return true;
  *seen = jsTurns_.load(std::memory_order_acquire);
  timespec wait = {0, kWatchNs};
  if (ppoll(fds, 1, &wait, nullptr) != 0) {  // stopped or nudged (or EINTR): look again
    thread_.Drain();
    background_ = true;
    return false;
  }
  if (jsTurns_.load(std::memory_order_acquire) != *seen) return false;
  pollfd uffd = {fd_, POLLIN, 0};
  return poll(&uffd, 1, 0) > 0;
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
  std::lock_guard<std::mutex> lock(readMutex_);
  ssize_t n = ReadMessages(buffer_, sizeof buffer_);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      RetryLocked();
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
  Dispatch(buffer_, count, toPost_, &retry_);
  Dispatch(retryNext_.data(), retryNext_.size(), toPost_, &retry_);
  retryNext_.clear();
  PostBatch();
  return true;
}

// Either thread, readMutex_ held: one read(2), and the handler's OnRead of what it returned,
// under the handler's ReadLock() (ordered answers: layout events are applied as they are read).
// errno is read(2)'s.
ssize_t FaultReader::ReadMessages(uffd_msg* buf, size_t size) {
  std::mutex* order = handler_->ReadLock();
  if (order != nullptr) order->lock();
  ssize_t n = read(fd_, buf, size);
  int readErr = errno;
  if (n > 0) handler_->OnRead(buf, static_cast<size_t>(n) / sizeof(uffd_msg));
  if (order != nullptr) order->unlock();
  errno = readErr;
  return n;
}

// Reader thread: answers again the faults that met EAGAIN, with no new message read.
void FaultReader::Retry() {
  if (retry_.empty()) return;
  std::lock_guard<std::mutex> lock(readMutex_);
  RetryLocked();
}

// Reader thread, readMutex_ held.
void FaultReader::RetryLocked() {
  if (retry_.empty()) return;
  retryNext_.swap(retry_);
  Dispatch(retryNext_.data(), retryNext_.size(), toPost_, &retry_);
  retryNext_.clear();
  PostBatch();
}

// Reader thread: one slice of the handler's background work.
void FaultReader::RunBackground() {
  Delivery d{};
  bool post = false;
  FaultHandler::Work w = handler_->Background(&d, &post);
  background_ = w != FaultHandler::Work::kIdle;
  backgroundLater_ = w == FaultHandler::Work::kLater;
  if (!background_) cpuSharing_.Reset();  // what preempts it from now on is no fill's business
  if (post) queue_.Post(&d, 1);
  // The fill never sleeps between its slices, so the scheduler would let it run a whole time
  // slice (milliseconds) before a thread woken on this CPU: on one CPU, the restored program
  // and criu restore's last steps waited behind it. Yielding after each slice hands the CPU
  // to them at once; with nothing else runnable here it returns at once.
  if (background_) sched_yield();
}

// Reader thread: hands this batch's deliveries to JS.
void FaultReader::PostBatch() {
  if (toPost_.empty()) return;
  queue_.Post(toPost_.data(), toPost_.size());
  toPost_.clear();
}

void FaultReader::Dispatch(const uffd_msg* msgs, size_t count, MappedVector<Delivery>& out,
                           MappedVector<uffd_msg>* retry) {
  for (size_t i = 0; i < count; i++) {
    Delivery d;
    d.msg = msgs[i];
    d.note = kNoteKernel;
    d.err = 0;
    switch (handler_->OnMessage(msgs[i], &d)) {
      case Disposition::kToJs:
        out.push_back(d);
        break;
      case Disposition::kRetry:
        if (retry != nullptr) {
          retry->push_back(msgs[i]);
        } else {
          // No retry list on the JS thread: woken, the thread faults again and a new message
          // comes, answered once the event in the way has been read.
          uint64_t page = msgs[i].arg.pagefault.address & ~(kPageSize - 1);
          uffd::Wake(fd_, page, kPageSize);
        }
        break;
      case Disposition::kHandled:
        break;
    }
  }
}

// JS thread, from the loop: the uffd is readable (status 0), or libuv failed to watch it.
void FaultReader::OnReadable(napi_env env, int status) {
  jsTurns_.fetch_add(1, std::memory_order_release);
  if (status < 0) {
    // The thread's own poll sees the same failure, reads in our stead and reports it.
    if (loop_ != nullptr) loop_->Stop();
    return;
  }
  // One handle scope for the whole turn: Node-API allocates each one (docs/performance.md).
  napi_handle_scope scope = nullptr;
  callFailed_ = onBatch_.IsEmpty();
  for (int reads = 0; reads <= kLoopRereads && ReadOnLoop(); reads++) {
    if (scope == nullptr && napi_open_handle_scope(env, &scope) != napi_ok) {
      scope = nullptr;
      for (Delivery& d : jsBatch_) Discard(d);
      jsBatch_.clear();
      return;
    }
    size_t handed = onBatch_.IsEmpty() ? 0
                                       : DeliverBatch(env, onBatch_.Value(), jsBatch_.data(),
                                                      jsBatch_.size(), true);
    for (size_t i = handed; i < jsBatch_.size(); i++) Discard(jsBatch_[i]);
    jsBatch_.clear();
    // The handler may have closed the uffd, or handed it to the thread: read no more here.
    // (And JavaScript that could not run, at teardown, is not given more.)
    if (callFailed_ || loop_ == nullptr || !direct_.load(std::memory_order_relaxed)) break;
  }
  if (scope != nullptr) napi_close_handle_scope(env, scope);
}

// JS thread, from the loop: one read(2) into jsBatch_; true when it holds deliveries. What the
// thread read while this one was busy (or in a listener) goes first: the kernel's order.
bool FaultReader::ReadOnLoop() {
  std::lock_guard<std::mutex> lock(readMutex_);
  queue_.TakePending(jsBatch_);
  ssize_t n = ReadMessages(jsBuffer_, sizeof jsBuffer_);
  if (n > 0) {
    Dispatch(jsBuffer_, static_cast<size_t>(n) / sizeof(uffd_msg), jsBatch_, nullptr);
  } else if (n < 0 && errno != EAGAIN && errno != EINTR && loop_ != nullptr) {
    loop_->Stop();  // as above: the thread reads next, meets the error and reports it
  }
  return !jsBatch_.empty();
}

// JS thread.
size_t FaultReader::DeliverBatch(napi_env env, napi_value fn, Delivery* batch, size_t count,
                                 bool fromLoop) {
  jsTurns_.fetch_add(1, std::memory_order_release);  // free to run JavaScript: not stuck
  size_t done = 0;
  while (done < count) {
    size_t n = std::min(scratchCapacity_, count - done);
    memcpy(scratchData_, &batch[done], n * sizeof(Delivery));
    for (size_t i = done; i < done + n; i++) {
      if (IsForkFd(batch[i])) HandOverFd(Napi::Env(env), batch[i].msg.arg.fork.ufd);
    }
    done += n;
    napi_value arg;
    napi_value result;
    napi_create_uint32(env, static_cast<uint32_t>(n), &arg);
    // From the loop there is no callback scope around this call: napi_make_callback opens one,
    // so that process.nextTick callbacks and promise jobs run after it, as after any I/O. Its
    // `this` must be an object: the callback itself (an arrow function, which ignores it), not
    // the global looked up per batch.
    napi_value recv = fn;
    if (!fromLoop) napi_get_undefined(env, &recv);
    napi_status st = fromLoop
                         ? napi_make_callback(env, queue_.context(), recv, fn, 1, &arg, &result)
                         : napi_call_function(env, recv, fn, 1, &arg, &result);
    if (st != napi_ok) {
      callFailed_ = true;
      // Either the callback threw (lib/ never lets it: it rethrows on a later tick; any
      // exception left pending here is reported by Node) or JS cannot run any more
      // (environment teardown: the uffd is closed by its cleanup hook). Stop either way.
      bool pending = false;
      napi_value error;
      if (fromLoop && napi_is_exception_pending(env, &pending) == napi_ok && pending &&
          napi_get_and_clear_last_exception(env, &error) == napi_ok) {
        napi_fatal_exception(env, error);  // as an uncaught exception: no JS frame to throw into
      }
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
