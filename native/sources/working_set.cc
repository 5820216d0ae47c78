#include "sources/working_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "uffd/clock.h"

namespace uffd {

WorkingSet::WorkingSet(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize,
                       SetSetup setup, int fd, DemandGate& gate, WorkingSetStats& stats)
    : id_(id),
      start_(start),
      length_(length),
      pageSize_(pageSize),
      record_(setup.record),
      stats_(stats),
      setFd_(setup.setFd),
      shape_(setup.shape),
      onLoadFailed_(std::move(setup.onLoadFailed)),
      pagesFd_(setup.pagesFd),
      pagesSource_(setup.pagesSource),
      installed_(setup.order ? length / pageSize : 0),
      order_(setup.order),
      readerFill_(std::move(setup.readerFill)),
      fixedWindow_(setup.window),
      maxWindow_(std::max<uint64_t>(1, kMaxAlongBytes / pageSize)) {
  uint64_t pages = length / pageSize;
  uint64_t words = (pages + 63) / 64;
  if (record_) {
    touched_.assign(words, 0);
    runs_.reserve(pages);
  }
  if (order_) {
    loaded_ = std::move(setup.loaded);
    loadedReady_.store(setFd_ < 0, std::memory_order_release);
    prefetcher_ = std::make_unique<Prefetcher>(order_, std::move(setup.prefetchFill), setup.mode,
                                               fd, pageSize, gate, stats, installed_);
    if (setup.adviseFd >= 0) prefetcher_->AdviseFile(setup.adviseFd, setup.adviseOffset);
    if (setFd_ >= 0) prefetcher_->LoadWith([this] { return LoadSet(); });
  } else if (setup.adviseFd >= 0) {
    close(setup.adviseFd);
  }
}

WorkingSet::~WorkingSet() {
  prefetcher_.reset();  // joins the thread that may be reading setFd_
  if (setFd_ >= 0) close(setFd_);
  if (pagesFd_ >= 0) close(pagesFd_);
  if (pagesSource_.fd >= 0) close(pagesSource_.fd);
}

// Prefetch thread, before the index is built: the reader looks at the set only once
// loadedReady_ (OnFault) or order_->ready() (AnswerAlong) says it is in.
bool WorkingSet::LoadSet() {
  std::vector<PageRun> runs;
  std::vector<uint64_t> pagesOf;
  SetLoadFailure failure;
  uint32_t checksum = 0;
  bool ok = LoadSetFile(setFd_, shape_, &runs, &pagesOf, &checksum, &failure);
  close(setFd_);
  setFd_ = -1;
  if (!ok) {
    if (onLoadFailed_) onLoadFailed_(failure);
    return false;
  }
  if (pagesFd_ >= 0) UsePagesFile(runs, checksum);
  loaded_ = std::move(pagesOf);
  order_->Load(std::move(runs));
  loadedReady_.store(true, std::memory_order_release);
  return true;
}

// Prefetch thread. A refused page file is reported and left: the pages come from the source.
void WorkingSet::UsePagesFile(const std::vector<PageRun>& runs, uint32_t setChecksum) {
  SetLoadFailure failure;
  if (!runs.empty() &&
      CheckSetPages(pagesFd_, pagesSource_, pageSize_, runs, setChecksum, &failure)) {
    // Mapped, as a page file checked by lib/ (Userfaultfd::AddWorkingSet): its pages lie in order.
    std::shared_ptr<PageSource> reader, prefetch;
    const char* failed = "dup";
    int err = 0;
    for (auto* p : {&reader, &prefetch}) {
      int fd = fcntl(pagesFd_, F_DUPFD_CLOEXEC, 0);
      if (fd >= 0) *p = MakeFileSource(fd, pageSize_, FileMode::kMapped, &failed);
      if (!*p && err == 0) err = errno;  // the first failure's: later calls may change errno
    }
    if (reader && prefetch) {
      readerFill_->UsePages(std::move(reader));
      prefetcher_->UseCompact(std::move(prefetch), pagesFd_, pageSize_);
      pagesFd_ = -1;
    } else {
      RefusePages(&failure, err);
    }
  }
  if (failure.kind != SetLoadFailure::kNone && onLoadFailed_) onLoadFailed_(failure);
  if (pagesFd_ >= 0) close(pagesFd_);
  pagesFd_ = -1;
  close(pagesSource_.fd);
  pagesSource_.fd = -1;
}

// Reader thread. No allocation: runs_ has room for every page.
bool WorkingSet::OnFault(uint64_t address, bool write) {
  uint64_t page = (address - start_) / pageSize_;
  if (record_) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!Test(touched_, page)) {
      Set(touched_, page);
      uint32_t w = write ? 1 : 0;
      PageRun* last = runs_.empty() ? nullptr : &runs_.back();
      if (last != nullptr && last->write == w &&
          static_cast<uint64_t>(last->first) + last->count == page) {
        last->count++;
      } else {
        runs_.push_back(PageRun{static_cast<uint32_t>(page), 1, w});
      }
    }
  }
  return loadedReady_.load(std::memory_order_acquire) && !loaded_.empty() && Test(loaded_, page);
}

// Reader thread. Adaptive as ServedRanges' read-ahead, along the order: a fault where a program
// that follows the set faults next (at or just past what was installed ahead of it, by this
// thread or the prefetch thread) doubles the window; any other fault starts again at one page.
// A program that touches the set in another order (a stale set) is answered as without one.
uint64_t WorkingSet::WindowAt(uint64_t pos) {
  if (fixedWindow_ != 0) return fixedWindow_;
  uint64_t frontier = std::max(lastEnd_, prefetcher_ ? prefetcher_->position() : 0);
  if (pos >= lastEnd_ && pos <= frontier + window_)
    window_ = std::min(window_ * 2, maxWindow_);
  else
    window_ = 1;
  return window_;
}

// Reader thread, under WorkingSets::mutex_ (the set cannot go meanwhile).
ServedRanges::Outcome WorkingSet::AnswerAlong(int fd, uint64_t address, FaultStats& stats,
                                              int* err) {
  (void)err;  // failures are ServedRanges' to answer and report
  if (!readerFill_ || !order_ || !following_.load(std::memory_order_relaxed) || !order_->ready())
    return ServedRanges::Outcome::kNotServed;
  uint64_t page = (address - start_) / pageSize_;
  int64_t at = order_->PositionOf(page);
  if (at < 0) return ServedRanges::Outcome::kNotServed;
  uint64_t t0 = MonotonicNs();
  uint64_t k = static_cast<uint64_t>(at);
  uint64_t window = std::min(WindowAt(k), order_->pages() - k);
  uint64_t pageAddress = start_ + page * pageSize_;
  // The faulting page first: counted before the ioctl, which may wake its thread (as
  // ServedRanges::FillOnce does).
  stats.CountResolve(pageSize_);
  IoctlResult res = readerFill_->Copy(page, k, 1, window > 1 ? UFFDIO_COPY_MODE_DONTWAKE : 0);
  if (res.bytes <= 0) {
    stats.Uncount(1, pageSize_);
    if (res.err == EEXIST) {
      // Installed since the fault (by prefetch, or for another thread's fault): it only needs a
      // wake, and was counted there. Each page of the set counts once, prefetched or on demand.
      stats_.demandFaults.fetch_sub(1, std::memory_order_relaxed);
      stats_.prefetchMisses.fetch_sub(1, std::memory_order_relaxed);
      Wake(fd, pageAddress, pageSize_);
      stats.CountWake();
      if (prefetcher_) prefetcher_->Follow(k + 1);
      return ServedRanges::Outcome::kAnswered;
    }
    if (res.err == EAGAIN) return ServedRanges::Outcome::kRetry;
    if (res.err == ESRCH) return ServedRanges::Outcome::kOwnerGone;
    return ServedRanges::Outcome::kNotServed;
  }
  // Then the next pages of the order, given up quietly on any error, and one wake.
  uint64_t pos = k + 1, end = k + window;
  size_t ri = order_->RunAt(pos);
  while (pos < end) {
    while (pos >= order_->runStart(ri + 1)) ri++;
    const PageRun& r = order_->run(ri);
    uint64_t off = pos - order_->runStart(ri);
    uint64_t count = std::min<uint64_t>(r.count - off, end - pos);
    if (installed_.Test(r.first + off)) {  // prefetched already: no read for an EEXIST
      pos++;
      continue;
    }
    res = readerFill_->Copy(r.first + off, pos, count, UFFDIO_COPY_MODE_DONTWAKE);
    if (res.bytes > 0) {
      uint64_t pages = static_cast<uint64_t>(res.bytes) / pageSize_;
      installed_.SetRange(r.first + off, pages);
      stats_.prefetched.fetch_add(pages, std::memory_order_relaxed);
      pos += pages;
    } else if (res.err == EEXIST) {
      pos++;
    } else {
      break;
    }
  }
  if (window > 1) {
    Wake(fd, pageAddress, pageSize_);
    stats.CountWake();
  }
  lastEnd_ = pos;
  if (prefetcher_) prefetcher_->Follow(pos);
  stats.RecordLatency(MonotonicNs() - t0);
  return ServedRanges::Outcome::kAnswered;
}

void WorkingSet::StopFollowing() {
  following_.store(false, std::memory_order_relaxed);
  if (prefetcher_) prefetcher_->Cancel();
}

// The copy is allocated before the lock: the reader takes mutex_ for every fault, and must never
// wait on a thread that waits on malloc (mapped_vector.h).
std::vector<PageRun> WorkingSet::Recorded() {
  std::vector<PageRun> out;
  for (;;) {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      n = runs_.size();
      if (n <= out.capacity()) {
        out.assign(runs_.begin(), runs_.end());  // fits: no allocation
        return out;
      }
    }
    out.reserve(n + 64);  // the reader may add runs meanwhile: some room for them
  }
}

int WorkingSets::Add(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize, int fd,
                     SetSetup setup) {
  auto set = std::make_unique<WorkingSet>(id, start, length, pageSize, std::move(setup), fd, gate_,
                                          stats_);
  Prefetcher* prefetcher = set->prefetcher();
  {
    // Grown before the lock (see mutex_); only the JS thread adds or removes.
    std::vector<std::unique_ptr<WorkingSet>> grown;
    if (sets_.size() == sets_.capacity()) grown.reserve(2 * sets_.capacity() + 1);
    std::lock_guard<std::mutex> lock(mutex_);
    if (grown.capacity() > 0) {
      for (auto& s : sets_) grown.push_back(std::move(s));
      sets_.swap(grown);
    }
    sets_.push_back(std::move(set));
    count_.store(static_cast<int>(sets_.size()), std::memory_order_relaxed);
  }
  // Started once the set is in place: its first faults are counted against it.
  int err = prefetcher != nullptr ? prefetcher->Start() : 0;
  if (err != 0) Remove(id);
  return err;
}

std::unique_ptr<WorkingSet> WorkingSets::Take(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(sets_.begin(), sets_.end(), [id](const auto& s) { return s->id() == id; });
  if (it == sets_.end()) return nullptr;
  std::unique_ptr<WorkingSet> s = std::move(*it);
  sets_.erase(it);
  count_.store(static_cast<int>(sets_.size()), std::memory_order_relaxed);
  return s;
}

// JS thread. The join happens outside mutex_: the reader may need it meanwhile.
bool WorkingSets::Remove(uint32_t id) {
  std::unique_ptr<WorkingSet> s = Take(id);
  if (!s) return false;
  if (Prefetcher* p = s->prefetcher()) {
    p->Cancel();
    gate_.NotifyAll();
    p->Stop();
  }
  return true;
}

void WorkingSets::Clear() {
  std::vector<std::unique_ptr<WorkingSet>> all;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    all.swap(sets_);
    count_.store(0, std::memory_order_relaxed);
  }
  for (auto& s : all) {
    if (Prefetcher* p = s->prefetcher()) p->Cancel();
  }
  gate_.NotifyAll();
  for (auto& s : all) {
    if (Prefetcher* p = s->prefetcher()) p->Stop();
  }
}

// JS thread: the only thread that removes sets, so the one found stays while it is copied,
// outside mutex_ (the copy allocates).
std::vector<PageRun> WorkingSets::Recorded(uint32_t id) {
  WorkingSet* found = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : sets_) {
      if (s->id() == id) found = s.get();
    }
  }
  return found != nullptr ? found->Recorded() : std::vector<PageRun>{};
}

std::vector<uint8_t> WorkingSets::Installed(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->id() != id) continue;
    std::vector<uint8_t> out(s->installed().bytes());
    s->installed().CopyTo(out.data(), out.size());
    return out;
  }
  return {};
}

// Reader thread.
bool WorkingSets::OnFault(uint64_t address, bool write) {
  if (count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (!s->Contains(address)) continue;
    stats_.demandFaults.fetch_add(1, std::memory_order_relaxed);
    if (s->OnFault(address, write)) stats_.prefetchMisses.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

// Reader thread. Holds mutex_ for the whole fill, as ServedRanges::Answer does: the set (and
// its sources) stay until it returns.
ServedRanges::Outcome WorkingSets::AnswerAlong(int fd, uint64_t address, FaultStats& stats,
                                               int* err) {
  if (count_.load(std::memory_order_relaxed) == 0) return ServedRanges::Outcome::kNotServed;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->Contains(address)) return s->AnswerAlong(fd, address, stats, err);
  }
  return ServedRanges::Outcome::kNotServed;
}

// Reader thread.
bool WorkingSets::Holds(uint64_t address) {
  if (count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->Contains(address)) return s->Holds();
  }
  return false;
}

// Reader thread.
void WorkingSets::OnLayoutChange(uint64_t start, uint64_t end) {
  if (count_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->Overlaps(start, end)) s->StopFollowing();
  }
}

}  // namespace uffd
