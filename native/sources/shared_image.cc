#include "sources/shared_image.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace uffd {

SharedImage::SharedImage(int memfd, uint64_t size, uint64_t pageSize,
                         std::shared_ptr<PageSource> source, uint64_t maxBytes, bool record)
    : fd_(memfd),
      size_(size),
      pageSize_(pageSize),
      pages_((size + pageSize - 1) / pageSize),
      maxBytes_(maxBytes),
      source_(std::move(source)),
      present_(new std::atomic<uint64_t>[(pages_ + 63) / 64]()),
      tail_(pageSize),
      record_(record) {
  // Mapped, not zeroed page by page at creation: only a pread source ever reads into it.
  bounce_.resize(ServedRanges::kMaxWindow);
  if (maxBytes_ != 0) {
    prev_.assign(pages_, kNil);
    next_.assign(pages_, kNil);
  }
  if (record_) {
    order_.reserve(pages_);
    recorded_.assign(pages_, 0);
  }
}

SharedImage::~SharedImage() { close(fd_); }

bool SharedImage::Present(uint64_t offset) const {
  uint64_t p = offset / pageSize_;
  if (p >= pages_) return false;
  return (present_[p / 64].load(std::memory_order_acquire) >> (p % 64)) & 1;
}

bool SharedImage::BelowCap() const {
  return maxBytes_ == 0 ||
         counters_.filledPages.load(std::memory_order_relaxed) * pageSize_ < maxBytes_;
}

// Any thread.
int SharedImage::Fill(uint64_t offset, uint64_t length, bool demand, bool write, bool* wasPresent) {
  uint64_t first = offset / pageSize_;
  uint64_t last = std::min(pages_, (offset + length + pageSize_ - 1) / pageSize_);
  if (first >= last) return EINVAL;
  bool firstThere = Present(offset);
  if (wasPresent != nullptr) *wasPresent = firstThere;
  // Most faults of the second clone on find the whole window there: no lock, unless the cap
  // must hear of the touch.
  if (firstThere && (maxBytes_ == 0 || !demand)) {
    bool all = true;
    for (uint64_t p = first + 1; p < last && all; p++) all = Present(p * pageSize_);
    if (all || source_ == nullptr) {
      if (demand) counters_.sharedFaults.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  firstThere = Present(offset);  // another thread may have filled it meanwhile
  if (wasPresent != nullptr) *wasPresent = firstThere;
  if (!firstThere && source_ == nullptr) return kNeedsJs;
  if (demand) {
    (firstThere ? counters_.sharedFaults : counters_.demandFills)
        .fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t p = first;
  while (source_ != nullptr && p < last) {
    if (Present(p * pageSize_)) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < last && !Present(q * pageSize_)) q++;
    int err = ReadIn(p, q);
    if (err != 0) {
      if (p == first) return err;
      break;  // read-ahead: the faulting page is in
    }
    for (uint64_t i = p; i < q; i++) MarkPresent(i);
    if (!demand) counters_.prefetched.fetch_add(q - p, std::memory_order_relaxed);
    p = q;
  }
  if (demand && record_ && !recorded_[first]) {
    // Here, in the order the pages were first touched by any clone: what prefetch fills next.
    recorded_[first] = 1;
    order_.push_back(static_cast<uint32_t>(first) | (write ? kWriteBit : 0));
  }
  if (maxBytes_ != 0) {
    if (demand) Touch(first);
    EvictOver(first, last);
  }
  return 0;
}

// Under mutex_. One read of the source per call (a window of absent pages), as the faulting
// clone's window asked; past the source's end the memfd gets zeros.
int SharedImage::ReadIn(uint64_t p, uint64_t q) {
  uint64_t at = p * pageSize_;
  uint64_t end = std::min(q * pageSize_, size_);
  uint64_t srcSize = source_->size();
  counters_.sourceReads.fetch_add(1, std::memory_order_relaxed);
  uint64_t whole = at < srcSize ? std::min(end, at + ((srcSize - at) & ~(pageSize_ - 1))) : at;
  for (uint64_t pos = at; pos < whole;) {
    // A pread source reads at most one window into its bounce buffer per call.
    uint64_t n = std::min(whole - pos, ServedRanges::kMaxWindow);
    // A file goes straight into the memfd (sendfile: one copy, no bounce buffer).
    int err = directWrites_ ? source_->WriteTo(fd_, pos, pos, n) : ENOTSUP;
    if (err == ENOTSUP) {
      directWrites_ = false;
      const uint8_t* bytes = source_->Read(pos, n, bounce_.data());
      if (bytes == nullptr) return errno != 0 ? errno : EIO;
      err = WriteAll(bytes, n, pos);
    } else if (err == ENODATA) {
      err = Zero(pos, n);  // the file shrank since: zeros past its end, as Read gives
    }
    if (err != 0) return err;
    counters_.sourceBytes.fetch_add(n, std::memory_order_relaxed);
    pos += n;
  }
  uint64_t pos = whole;
  if (pos < end && pos < srcSize) {
    // The source ends inside this page: its bytes, then zeros.
    uint64_t tail = srcSize - pos;
    if (!source_->CopyOut(pos, tail, tail_.data())) return errno != 0 ? errno : EIO;
    memset(tail_.data() + tail, 0, pageSize_ - tail);
    int err = WriteAll(tail_.data(), std::min(pageSize_, end - pos), pos);
    if (err != 0) return err;
    counters_.sourceBytes.fetch_add(tail, std::memory_order_relaxed);
    pos += pageSize_;
  }
  return pos < end ? Zero(pos, end - pos) : 0;
}

int SharedImage::WriteAll(const uint8_t* data, uint64_t length, uint64_t at) {
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = pwrite(fd_, data + done, length - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

// Zero pages in the memfd: fallocate allocates them without a copy (a page so allocated counts
// as present: the clones map it without a fault).
int SharedImage::Zero(uint64_t at, uint64_t length) {
  if (fallocate(fd_, 0, static_cast<off_t>(at), static_cast<off_t>(length)) == 0) return 0;
  if (errno != EOPNOTSUPP) return errno;
  static const uint8_t zeros[4096] = {};
  for (uint64_t pos = at; pos < at + length; pos += sizeof zeros) {
    int err = WriteAll(zeros, std::min<uint64_t>(sizeof zeros, at + length - pos), pos);
    if (err != 0) return err;
  }
  return 0;
}

// JS thread.
int SharedImage::Write(uint64_t offset, const uint8_t* data, uint64_t length) {
  if (offset % pageSize_ != 0 || offset >= size_ || length > size_ - offset) return EINVAL;
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t first = offset / pageSize_, last = (offset + length + pageSize_ - 1) / pageSize_;
  for (uint64_t p = first; p < last; p++) {
    if (Present(p * pageSize_)) continue;
    uint64_t at = p * pageSize_ - offset;
    uint64_t n = std::min(pageSize_, length - at);
    // A short last page: the rest of a page new to the memfd reads as zeros.
    int err = WriteAll(data + at, n, p * pageSize_);
    if (err != 0) return err;
    counters_.sourceBytes.fetch_add(n, std::memory_order_relaxed);
    MarkPresent(p);
  }
  counters_.sourceReads.fetch_add(1, std::memory_order_relaxed);
  if (maxBytes_ != 0) EvictOver(first, last);
  return 0;
}

int SharedImage::ReadPage(uint64_t offset, uint8_t* out) {
  uint64_t done = 0;
  while (done < pageSize_) {
    ssize_t n = pread(fd_, out + done, pageSize_ - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) {
      memset(out + done, 0, pageSize_ - done);
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

void SharedImage::MarkPresent(uint64_t p) {
  present_[p / 64].fetch_or(1ull << (p % 64), std::memory_order_release);
  counters_.filledPages.fetch_add(1, std::memory_order_relaxed);
  if (maxBytes_ != 0) Touch(p);
}

void SharedImage::Unlink(uint64_t p) {
  uint32_t a = prev_[p], b = next_[p];
  if (a != kNil) next_[a] = b;
  if (b != kNil) prev_[b] = a;
  if (head_ == p) head_ = b;
  if (tail_page_ == p) tail_page_ = a;
  prev_[p] = next_[p] = kNil;
}

void SharedImage::Touch(uint64_t p) {
  if (head_ == p) return;
  if (prev_[p] != kNil || next_[p] != kNil || tail_page_ == p) Unlink(p);
  next_[p] = head_;
  if (head_ != kNil) prev_[head_] = static_cast<uint32_t>(p);
  head_ = static_cast<uint32_t>(p);
  if (tail_page_ == kNil) tail_page_ = head_;
}

// Under mutex_. Punches out the pages touched least recently until the image fits its cap,
// never one of [keepFirst, keepLast) (the window just filled). A clone that maps a punched page
// loses it (the kernel unmaps it from every clone; a clone's private copy stays) and faults on it
// again, which reads it again.
void SharedImage::EvictOver(uint64_t keepFirst, uint64_t keepLast) {
  while (counters_.filledPages.load(std::memory_order_relaxed) * pageSize_ > maxBytes_) {
    uint32_t victim = tail_page_;
    if (victim == kNil || (victim >= keepFirst && victim < keepLast)) return;
    Unlink(victim);
    present_[victim / 64].fetch_and(~(1ull << (victim % 64)), std::memory_order_release);
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              static_cast<off_t>(victim * pageSize_), static_cast<off_t>(pageSize_));
    counters_.filledPages.fetch_sub(1, std::memory_order_relaxed);
    counters_.evictedPages.fetch_add(1, std::memory_order_relaxed);
  }
}

// JS thread.
std::vector<PageRun> SharedImage::Recorded() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<PageRun> runs;
  for (uint32_t e : order_) {
    uint32_t page = e & ~kWriteBit, write = (e & kWriteBit) ? 1 : 0;
    if (!runs.empty() && runs.back().first + runs.back().count == page &&
        runs.back().write == write) {
      runs.back().count++;
    } else {
      runs.push_back(PageRun{page, 1, write});
    }
  }
  return runs;
}

}  // namespace uffd
