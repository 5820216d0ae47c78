#include "sources/prefetcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <system_error>

namespace uffd {

Prefetcher::Prefetcher(int fd, uint64_t start, uint64_t pageSize,
                       std::shared_ptr<PageSource> source, std::vector<PageRun> runs,
                       DemandGate& gate, WorkingSetStats& stats)
    : fd_(fd),
      start_(start),
      pageSize_(pageSize),
      source_(std::move(source)),
      runs_(std::move(runs)),
      gate_(gate),
      stats_(stats),
      tailPage_(pageSize) {}

Prefetcher::~Prefetcher() {
  Stop();
  if (adviseFd_ >= 0) close(adviseFd_);
}

int Prefetcher::Start() {
  try {
    thread_ = std::thread([this] { Run(); });
    return 0;
  } catch (const std::system_error& e) {
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
}

void Prefetcher::Stop() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

// Prefetch thread. A bounded wait that a Cancel() (with gate_.NotifyAll()) cuts short only at
// its end: kRetryMs is short.
void Prefetcher::Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Prefetch thread.
void Prefetcher::Run() {
  for (size_t i = 0; i < runs_.size(); i++) {
    if (stop_.load(std::memory_order_acquire)) return;
    AdviseAhead(i);
    const PageRun& r = runs_[i];
    uint64_t len = static_cast<uint64_t>(r.count) * pageSize_;
    if (!FillRun(start_ + r.first * pageSize_, len)) return;
    doneBytes_ += len;
  }
}

// Prefetch thread. WILLNEED starts asynchronous reads of the page cache and returns; past the
// end of the file it does nothing.
void Prefetcher::AdviseAhead(size_t run) {
  if (adviseFd_ < 0) return;
  if (advisedRuns_ < run) advisedRuns_ = run;
  while (advisedRuns_ < runs_.size() && advisedBytes_ < doneBytes_ + kAdviseBytes) {
    const PageRun& r = runs_[advisedRuns_++];
    uint64_t len = static_cast<uint64_t>(r.count) * pageSize_;
    posix_fadvise(adviseFd_, static_cast<off_t>(adviseOffset_ + r.first * pageSize_),
                  static_cast<off_t>(len), POSIX_FADV_WILLNEED);
    advisedBytes_ += len;
  }
}

// Prefetch thread. The copies do not wake: a thread that faulted on a page of the run waits
// for the one wake at the end of the run (or for the reader, which answers its fault with
// EEXIST and a wake as soon as it reads it).
bool Prefetcher::FillRun(uint64_t dst, uint64_t len) {
  uint64_t pos = 0;
  bool copied = false;
  bool ok = true;
  while (pos < len) {
    gate_.WaitIdle(fd_, stop_);
    if (stop_.load(std::memory_order_acquire)) {
      ok = false;
      break;
    }
    IoctlResult res = CopyBatch(dst + pos, std::min(len - pos, kBatchBytes));
    if (res.bytes > 0) {
      uint64_t pages = static_cast<uint64_t>(res.bytes) / pageSize_;
      stats_.prefetched.fetch_add(pages, std::memory_order_relaxed);
      cursor_.fetch_add(pages, std::memory_order_relaxed);
      pos += static_cast<uint64_t>(res.bytes);
      copied = true;
      continue;  // done, or partial: what stopped it shows on the next ioctl
    }
    if (res.err == EEXIST) {  // present already: a demand fault, or the program wrote it
      cursor_.fetch_add(1, std::memory_order_relaxed);
      pos += pageSize_;
      continue;
    }
    if (res.err == EAGAIN) {  // a non-cooperative event is unread: the reader reads it first
      Sleep(kRetryMs);
      continue;
    }
    // ENOENT (unregistered, unmapped), ESRCH (the owner exited), a source error: stop.
    ok = false;
    break;
  }
  if (copied) Wake(fd_, dst, pos);
  return ok;
}

// Prefetch thread, as ServedRanges::FillOnce: the source's bytes, a zero-padded last page,
// zeros past its end.
IoctlResult Prefetcher::CopyBatch(uint64_t dst, uint64_t len) {
  PageSource& src = *source_;
  uint64_t size = src.size();
  uint64_t so = dst - start_;
  if (so >= size) return Zeropage(fd_, dst, len, UFFDIO_ZEROPAGE_MODE_DONTWAKE);
  if (size - so >= pageSize_) {
    uint64_t n = std::min(len, (size - so) & ~(pageSize_ - 1));
    const uint8_t* bytes = src.Read(so, n);
    if (bytes == nullptr) return {0, errno != 0 ? errno : EIO};
    return Copy(fd_, dst, bytes, n, UFFDIO_COPY_MODE_DONTWAKE);
  }
  uint64_t tail = size - so;
  if (!src.CopyOut(so, tail, tailPage_.data())) return {0, errno != 0 ? errno : EIO};
  memset(tailPage_.data() + tail, 0, pageSize_ - tail);
  return Copy(fd_, dst, tailPage_.data(), pageSize_, UFFDIO_COPY_MODE_DONTWAKE);
}

}  // namespace uffd
