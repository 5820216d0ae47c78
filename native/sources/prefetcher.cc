#include "sources/prefetcher.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include "uffd/clock.h"

namespace uffd {

Prefetcher::Prefetcher(std::shared_ptr<SetOrder> order, std::unique_ptr<SetFill> fill, Mode mode,
                       int fd, uint64_t pageSize, DemandGate& gate, WorkingSetStats& stats,
                       PageBitmap& installed)
    : order_(std::move(order)),
      fill_(std::move(fill)),
      mode_(mode),
      fd_(fd),
      pageSize_(pageSize),
      gate_(gate),
      stats_(stats),
      installed_(installed),
      advising_(fill_->compact()),
      answeredAtStart_(gate.answered()),
      holding_(mode == Mode::kEager) {}

Prefetcher::~Prefetcher() {
  Stop();
  if (adviseFd_ >= 0) close(adviseFd_);
}

int Prefetcher::Start() {
  try {
    thread_ = std::thread([this] { Run(); });
    return 0;
  } catch (const std::system_error& e) {
    holding_.store(false, std::memory_order_release);
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
}

void Prefetcher::Stop() {
  Cancel();
  if (thread_.joinable()) thread_.join();
  holding_.store(false, std::memory_order_release);
}

// Called on the reader thread. Only forward: a fault before the thread's position says nothing
// new about where the program is going.
void Prefetcher::Follow(uint64_t pos) {
  uint64_t cur = follow_.load(std::memory_order_relaxed);
  while (pos > cur && !follow_.compare_exchange_weak(cur, pos, std::memory_order_relaxed)) {
  }
}

// Prefetch thread. A bounded wait that a Cancel() (with gate_.NotifyAll()) cuts short only at
// its end: kRetryMs is short.
void Prefetcher::Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Prefetch thread. The reader looks pages up by position only in background mode; an eager
// install holds the range's faults, so the index is built after it, off the first fault's path.
void Prefetcher::Run() {
  if (mode_ == Mode::kBackground) {
    gate_.WaitAnswered(answeredAtStart_, stop_, load_ ? kLoadFirstFaultUs : kFirstFaultUs);
    if (load_) {
      std::this_thread::sleep_for(std::chrono::microseconds(kLoadAfterAnswerUs));
      if (stop_.load(std::memory_order_acquire) || !load_()) return;
    }
    order_->BuildIndex();
  }
  Install();
  holding_.store(false, std::memory_order_release);
  if (mode_ == Mode::kEager) order_->BuildIndex();
}

void Prefetcher::Install() {
  if (!Fill(0, order_->pages(), mode_ == Mode::kBackground)) return;
  for (int i = 0; i < gapCount_; i++) {
    if (!Fill(gaps_[i][0], gaps_[i][1], false)) return;
  }
}

// Prefetch thread, background mode: demand faults go first, within a bound.
void Prefetcher::Yield() {
  uint64_t now = MonotonicNs();
  if (now < lookAt_) return;
  bool idle = gate_.WaitIdle(fd_, stop_, kYieldUs);
  lookAt_ = (idle ? now : MonotonicNs()) + (idle ? kLookNs : kQuantumNs);
}

// Prefetch thread. WILLNEED starts asynchronous reads of the page cache and returns; past the
// end of the file it does nothing. A compact file is read in order: one hint per stretch.
void Prefetcher::Advise(uint64_t pos) {
  if (adviseFd_ < 0 || !advising_) return;
  uint64_t ahead = std::clamp(doneBytes_, kAdviseStartBytes, kAdviseBytes) / pageSize_;
  uint64_t target = std::min(order_->pages(), pos + ahead);
  if (advisedPos_ < pos) advisedPos_ = pos;
  if (advisedPos_ >= target) return;
  if (fill_->compact()) {
    // Not below a quarter of the window at a time: few calls for a sequential file.
    if (target < order_->pages() && target - advisedPos_ < ahead / 4) return;
    posix_fadvise(adviseFd_, static_cast<off_t>(adviseOffset_ + advisedPos_ * pageSize_),
                  static_cast<off_t>((target - advisedPos_) * pageSize_), POSIX_FADV_WILLNEED);
    advisedPos_ = target;
    return;
  }
  while (advisedPos_ < target) {
    size_t ri = order_->RunAt(advisedPos_);
    const PageRun& r = order_->run(ri);
    uint64_t off = advisedPos_ - order_->runStart(ri);
    uint64_t n = std::min<uint64_t>(r.count - off, target - advisedPos_);
    posix_fadvise(adviseFd_, static_cast<off_t>(adviseOffset_ + (r.first + off) * pageSize_),
                  static_cast<off_t>(n * pageSize_), POSIX_FADV_WILLNEED);
    advisedPos_ += n;
  }
}

// Prefetch thread. RWF_NOWAIT: EAGAIN when the read would wait for the disk; nothing is read
// ahead. Past the end of the file it reads 0 bytes (a hole of zeros: nothing to hint).
bool Prefetcher::Cached(uint64_t page) {
  char byte;
  iovec v{&byte, 1};
  if (preadv2(adviseFd_, &v, 1, static_cast<off_t>(adviseOffset_ + page * pageSize_), RWF_NOWAIT) >=
      0)
    return true;
  if (errno == EAGAIN) return false;
  if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) probing_ = false;
  return true;
}

// Prefetch thread. Background copies wake at once a thread that faulted on one of their pages
// (the kernel's wake is cheap when nobody waits); eager ones do not: the held faults are
// answered (EEXIST and a wake) once the whole set is in.
bool Prefetcher::Fill(uint64_t from, uint64_t to, bool follow) {
  const uint64_t mode = mode_ == Mode::kEager ? UFFDIO_COPY_MODE_DONTWAKE : 0;
  const uint64_t batch = std::max<uint64_t>(1, kBatchBytes / pageSize_);
  uint64_t pos = from;
  size_t ri = order_->RunAt(pos);
  while (pos < to) {
    if (stop_.load(std::memory_order_acquire)) return false;
    if (follow) {
      uint64_t f = follow_.load(std::memory_order_relaxed);
      if (f > pos) {
        if (f - pos >= kMinGap && gapCount_ < kMaxGaps) {
          gaps_[gapCount_][0] = pos;
          gaps_[gapCount_][1] = std::min(f, to);
          gapCount_++;
        }
        pos = f;
        position_.store(pos, std::memory_order_relaxed);
        if (pos >= to) break;
        ri = order_->RunAt(pos);
      }
    }
    if (mode_ == Mode::kBackground) {
      Yield();
      if (stop_.load(std::memory_order_acquire)) return false;
    }
    while (pos >= order_->runStart(ri + 1)) ri++;
    const PageRun& r = order_->run(ri);
    uint64_t off = pos - order_->runStart(ri);
    uint64_t count = std::min({static_cast<uint64_t>(r.count) - off, batch, to - pos});
    if (installed_.Test(r.first + off)) {
      // The reader put it in ahead of a demand fault (or an earlier pass did): no read for an
      // EEXIST. Scattered single pages would otherwise cost a read and an ioctl each, twice.
      position_.store(++pos, std::memory_order_relaxed);
      continue;
    }
    if (!advising_ && adviseFd_ >= 0 && probing_ && copies_++ % kProbeEvery == 0)
      advising_ = !Cached(r.first + off);
    Advise(pos);
    uint64_t t0 = advising_ || probing_ ? 0 : MonotonicNs();
    IoctlResult res = fill_->Copy(r.first + off, pos, count, mode);
    if (t0 != 0 && adviseFd_ >= 0 && MonotonicNs() - t0 > kColdReadNs) advising_ = true;
    if (res.bytes > 0) {
      uint64_t pages = static_cast<uint64_t>(res.bytes) / pageSize_;
      installed_.SetRange(r.first + off, pages);
      stats_.prefetched.fetch_add(pages, std::memory_order_relaxed);
      pos += pages;
      position_.store(pos, std::memory_order_relaxed);
      doneBytes_ += static_cast<uint64_t>(res.bytes);
      registered_ = true;
      continue;  // done, or partial: what stopped it shows on the next ioctl
    }
    if (res.err == EEXIST) {  // present already: a demand fault, or the program wrote it
      registered_ = true;
      installed_.SetRange(r.first + off, 1);
      position_.store(++pos, std::memory_order_relaxed);
      continue;
    }
    if (res.err == EAGAIN) {  // a non-cooperative event is unread: the reader reads it first
      Sleep(kRetryMs);
      continue;
    }
    if (res.err == ENOENT && !registered_ && waitedMs_ < kRegisterWaitMs) {
      // Nothing installed yet: the memory may not be registered yet (a uffd sent before its
      // owner registered it, as criu restore sends its tasks'). Wait for it, for a while.
      Sleep(kRetryMs);
      waitedMs_ += kRetryMs;
      continue;
    }
    // ENOENT (unregistered, unmapped), ESRCH (the owner exited), a source error: stop.
    return false;
  }
  return true;
}

}  // namespace uffd
