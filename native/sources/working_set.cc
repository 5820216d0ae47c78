#include "sources/working_set.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "sources/prefetcher.h"

namespace uffd {

void DemandGate::End() {
  // Lock only when a prefetch thread waits: the reader's fast path stays one atomic.
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

// Prefetch thread. poll(2) with a zero timeout sees faults queued on the uffd that the reader
// has not read yet; the counter sees those it is answering.
void DemandGate::WaitIdle(int fd, const std::atomic<bool>& stop) {
  for (;;) {
    if (stop.load(std::memory_order_acquire)) return;
    pollfd p{fd, POLLIN, 0};
    bool queued = poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
    if (!queued && pending_.load(std::memory_order_acquire) == 0) return;
    std::unique_lock<std::mutex> lock(mutex_);
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    cv_.wait_for(lock, std::chrono::microseconds(kSliceUs));
    waiters_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

WorkingSet::WorkingSet(uint32_t id, uint64_t start, uint64_t length, uint64_t pageSize, bool record,
                       const std::vector<PageRun>& loaded)
    : id_(id), start_(start), length_(length), pageSize_(pageSize), record_(record) {
  uint64_t pages = length / pageSize;
  uint64_t words = (pages + 63) / 64;
  if (record) {
    touched_.assign(words, 0);
    runs_.reserve(pages);
  }
  if (!loaded.empty()) {
    loaded_.assign(words, 0);
    for (const PageRun& r : loaded) {
      for (uint64_t p = r.first; p < static_cast<uint64_t>(r.first) + r.count && p < pages; p++)
        Set(loaded_, p);
    }
  }
}

WorkingSet::~WorkingSet() = default;

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
  return !loaded_.empty() && Test(loaded_, page);
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

int WorkingSets::Add(std::unique_ptr<WorkingSet> set, int fd, std::shared_ptr<PageSource> source,
                     std::vector<PageRun> loaded, int adviseFd, uint64_t fileOffset) {
  Prefetcher* prefetcher = nullptr;
  if (!loaded.empty()) {
    set->prefetcher = std::make_unique<Prefetcher>(
        fd, set->start(), set->pageSize(), std::move(source), std::move(loaded), gate_, stats_);
    prefetcher = set->prefetcher.get();
    if (adviseFd >= 0) prefetcher->AdviseFile(adviseFd, fileOffset);
  } else if (adviseFd >= 0) {
    close(adviseFd);
  }
  uint32_t id = set->id();
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
  if (s->prefetcher) {
    s->prefetcher->Cancel();
    gate_.NotifyAll();
    s->prefetcher->Stop();
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
    if (s->prefetcher) s->prefetcher->Cancel();
  }
  gate_.NotifyAll();
  for (auto& s : all) {
    if (s->prefetcher) s->prefetcher->Stop();
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

int64_t WorkingSets::PrefetchCursor(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->id() == id) return s->prefetcher ? static_cast<int64_t>(s->prefetcher->cursor()) : -1;
  }
  return -1;
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

// Reader thread.
void WorkingSets::OnLayoutChange(uint64_t start, uint64_t end) {
  if (count_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& s : sets_) {
    if (s->prefetcher && s->Overlaps(start, end)) s->prefetcher->Cancel();
  }
}

}  // namespace uffd
