#include "sources/page_source.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "uffd/uffd_ioctl.h"

namespace uffd {

bool PageSource::CopyOut(uint64_t offset, uint64_t len, uint8_t* out) {
  const uint8_t* bytes = Read(offset, len);
  if (bytes == nullptr) return false;
  memcpy(out, bytes, len);
  return true;
}

namespace {

// Reader thread. pread(2) until `len` bytes are in `out`; a file that shrank since serve()
// reads as zeros past its new end.
bool PreadFully(int fd, uint64_t at, uint64_t len, uint8_t* out) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, out + done, len - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      memset(out + done, 0, len - done);
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  return true;
}

class ZeroSource : public PageSource {
 public:
  uint64_t size() const override { return 0; }
  const uint8_t* Read(uint64_t, uint64_t) override { return nullptr; }
};

class MemorySource : public PageSource {
 public:
  MemorySource(const uint8_t* data, uint64_t length) : data_(data), length_(length) {}
  uint64_t size() const override { return length_; }
  const uint8_t* Read(uint64_t offset, uint64_t) override { return data_ + offset; }

 private:
  const uint8_t* data_;
  uint64_t length_;
};

// A copy of bytes JavaScript could free while they are served (a detached ArrayBuffer), in
// memory of its own, mapped so that a large copy goes back to the system when unserved.
class OwnedMemorySource : public PageSource {
 public:
  OwnedMemorySource(uint8_t* data, uint64_t length) : data_(data), length_(length) {}
  ~OwnedMemorySource() override {
    if (data_ != nullptr) munmap(data_, length_);
  }
  uint64_t size() const override { return length_; }
  const uint8_t* Read(uint64_t offset, uint64_t) override { return data_ + offset; }

 private:
  uint8_t* data_;
  uint64_t length_;
};

// The file mapped once: UFFDIO_COPY then reads the page cache directly, one copy in all.
// The fd is kept for the partial last page, read with pread(2) (see CopyOut).
class MappedFileSource : public PageSource {
 public:
  MappedFileSource(int fd, uint64_t offset, void* map, uint64_t mapLength, uint64_t skew,
                   uint64_t size)
      : fd_(fd), offset_(offset), map_(map), mapLength_(mapLength), skew_(skew), size_(size) {}
  ~MappedFileSource() override {
    if (map_ != nullptr) munmap(map_, mapLength_);
    close(fd_);
  }
  uint64_t size() const override { return size_; }
  const uint8_t* Read(uint64_t offset, uint64_t) override {
    return static_cast<const uint8_t*>(map_) + skew_ + offset;
  }
  bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out) override {
    return PreadFully(fd_, offset_ + offset, len, out);
  }

 private:
  int fd_;
  uint64_t offset_;
  void* map_;
  uint64_t mapLength_, skew_, size_;
};

// pread(2) into a bounce buffer, then UFFDIO_COPY: two copies, but no mapping of the file.
class PreadFileSource : public PageSource {
 public:
  PreadFileSource(int fd, uint64_t offset, uint64_t size, uint8_t* bounce)
      : fd_(fd), offset_(offset), size_(size), bounce_(bounce) {}
  ~PreadFileSource() override {
    close(fd_);
    free(bounce_);
  }
  uint64_t size() const override { return size_; }
  const uint8_t* Read(uint64_t offset, uint64_t len) override {
    len = std::min(len, ServedRanges::kMaxWindow);
    return PreadFully(fd_, offset_ + offset, len, bounce_) ? bounce_ : nullptr;
  }
  bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out) override {
    return PreadFully(fd_, offset_ + offset, len, out);
  }

 private:
  int fd_;
  uint64_t offset_, size_;
  uint8_t* bounce_;
};

// Zeros for huge pages, which have no UFFDIO_ZEROPAGE: one read-only anonymous mapping of a
// whole window, never written, so every page of it is the kernel's shared zero page.
const uint8_t* ZeroWindow() {
  static const uint8_t* zeros = [] {
    void* p =
        mmap(nullptr, ServedRanges::kMaxWindow, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<const uint8_t*>(p);
  }();
  return zeros;
}

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

std::unique_ptr<PageSource> MakeZeroSource() { return std::make_unique<ZeroSource>(); }

std::unique_ptr<PageSource> MakeMemorySource(const uint8_t* data, uint64_t length) {
  return std::make_unique<MemorySource>(data, length);
}

std::unique_ptr<PageSource> MakeCopiedMemorySource(const uint8_t* data, uint64_t length) {
  if (length == 0) return std::make_unique<MemorySource>(nullptr, 0);
  void* copy = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (copy == MAP_FAILED) return nullptr;
  memcpy(copy, data, length);
  return std::make_unique<OwnedMemorySource>(static_cast<uint8_t*>(copy), length);
}

std::unique_ptr<PageSource> MakeFileSource(int fd, uint64_t offset, FileMode mode,
                                           const char** failed) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    *failed = "fstat";
    return nullptr;
  }
  // A FIFO, socket or character device has no pages to serve (and reading one can block
  // the reader forever): only regular files and block devices.
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    close(fd);
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    *failed = "open";
    return nullptr;
  }
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &fileSize) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    *failed = "ioctl";
    return nullptr;
  }
  // A descriptor opened write-only cannot be read: say so now, not at the first fault.
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_ACCMODE) == O_WRONLY) {
    close(fd);
    errno = EBADF;
    *failed = "read";
    return nullptr;
  }
  uint64_t size = offset < fileSize ? fileSize - offset : 0;
  if (mode == FileMode::kPread) {
    void* bounce = nullptr;
    if (posix_memalign(&bounce, 4096, ServedRanges::kMaxWindow) != 0) {
      close(fd);
      errno = ENOMEM;
      *failed = "posix_memalign";
      return nullptr;
    }
    return std::make_unique<PreadFileSource>(fd, offset, size, static_cast<uint8_t*>(bounce));
  }
  void* map = nullptr;
  uint64_t skew = 0, mapLength = 0;
  if (size > 0) {
    uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t base = offset & ~(page - 1);
    skew = offset - base;
    mapLength = size + skew;
    map = mmap(nullptr, mapLength, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(base));
    if (map == MAP_FAILED) {
      int err = errno;
      close(fd);
      errno = err;
      *failed = "mmap";
      return nullptr;
    }
  }
  return std::make_unique<MappedFileSource>(fd, offset, map, mapLength, skew, size);
}

ServedRanges::ServedRanges(uint64_t pageSize)
    : pageSize_(pageSize), tailPage_(pageSize), residency_(kMaxWindow / pageSize) {
  ranges_.reserve(8);
}

// JS thread.
uint32_t ServedRanges::Add(uint64_t start, uint64_t length, std::shared_ptr<PageSource> source,
                           uint64_t readahead, bool zeroRemoved, uint64_t unit) {
  Range r{0, start, length, std::move(source), readahead, {}};
  r.zeroRemoved = zeroRemoved;
  r.unit = unit == 0 ? pageSize_ : unit;
  if (r.fixedWindow != 0)
    r.fixedWindow = (std::max(r.fixedWindow, r.unit) + r.unit - 1) & ~(r.unit - 1);
  // Allocated here, before the lock (see mutex_): room for one more range, and a tail page as
  // large as the largest unit. Only the JS thread adds, removes or grows.
  std::vector<Range> grown;
  if (ranges_.size() == ranges_.capacity()) grown.reserve(2 * ranges_.capacity() + 1);
  std::vector<uint8_t> tail;
  if (tailPage_.size() < r.unit) tail.resize(r.unit);
  std::lock_guard<std::mutex> lock(mutex_);
  r.id = nextId_++;
  if (grown.capacity() > 0) {
    for (Range& x : ranges_) grown.push_back(std::move(x));  // moves: no allocation
    ranges_.swap(grown);
  }
  if (!tail.empty()) tailPage_.swap(tail);
  ranges_.push_back(std::move(r));
  return ranges_.back().id;
}  // the old storage (grown, tail) is freed here, after the unlock

// JS thread. Once it returns, the reader no longer uses the range's source: Answer holds
// the same lock for the whole fill.
bool ServedRanges::Remove(uint32_t id) {
  Range gone{};  // destroyed (its source freed) after the unlock: see mutex_
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it =
        std::find_if(ranges_.begin(), ranges_.end(), [id](const Range& r) { return r.id == id; });
    if (it == ranges_.end()) return false;
    gone = std::move(*it);
    ranges_.erase(it);  // moves the rest down: no allocation, nothing freed
  }
  return true;
}

void ServedRanges::Clear() {
  std::vector<Range> gone;  // freed after the unlock
  std::lock_guard<std::mutex> lock(mutex_);
  ranges_.swap(gone);
}

// Reader thread.
void ServedRanges::Forget(uint64_t start, uint64_t end, bool removed) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Range& r : ranges_) {
    if (start < r.start + r.length && end > r.start) {
      for (Stream& s : r.streams) s = Stream{};
      if (!removed || !r.zeroRemoved) continue;
      // Merge [a, b) into the sorted, disjoint spans, in place (growing is a mremap: no
      // malloc). Here, on the reader thread, before any later fault is read: a fault in the
      // span can never be filled from the source first.
      uint64_t a = std::max(start, r.start), b = std::min(end, r.start + r.length);
      size_t i = 0, n = r.removed.size();
      while (i < n && r.removed[i].end < a) i++;  // spans wholly before (not touching) [a, b)
      size_t j = i;
      for (; j < n && r.removed[j].start <= b; j++) {  // spans touching or overlapping it
        a = std::min(a, r.removed[j].start);
        b = std::max(b, r.removed[j].end);
      }
      if (j == i) {
        r.removed.insert(i, Span{a, b});
      } else {
        r.removed[i] = Span{a, b};
        r.removed.erase(i + 1, j);
      }
    }
  }
}

// Reader thread, under mutex_: a removed page of a zeroRemoved range, one zero page.
ServedRanges::Outcome ServedRanges::ZeroRemoved(int fd, const Range& r, uint64_t page,
                                                FaultStats& stats, int* err) {
  stats.CountResolve(r.unit);
  IoctlResult res = Zeros(fd, r, page, r.unit);
  if (res.bytes > 0) {
    stats.CountWake();
    return Outcome::kAnswered;
  }
  stats.Uncount(1, r.unit);
  if (res.err == EEXIST) {
    Wake(fd, page, r.unit);
    stats.CountWake();
    return Outcome::kAnswered;
  }
  if (res.err == EAGAIN) return Outcome::kRetry;
  if (res.err == ESRCH) return Outcome::kOwnerGone;
  *err = res.err == 0 ? EIO : res.err;
  return Outcome::kFailed;
}

// Reader thread, under mutex_.
IoctlResult ServedRanges::Zeros(int fd, const Range& r, uint64_t dst, uint64_t length) {
  if (r.unit == pageSize_) return Zeropage(fd, dst, length, 0);
  const uint8_t* zeros = ZeroWindow();
  if (zeros == nullptr) return {0, ENOMEM};
  return Copy(fd, dst, zeros, std::min(length, kMaxWindow), 0);
}

// Reader thread, under mutex_. A fault where a tracked sequential reader was expected next
// doubles that reader's window (up to kMaxWindow); any other fault starts a new reader, in
// place of the least recently used one, with a one-page window: random access stays at one
// page, and up to kStreams interleaved sequential readers (threads) each keep their window.
uint64_t ServedRanges::WindowFor(Range& r, uint64_t page) {
  if (r.fixedWindow != 0) return r.fixedWindow;
  clock_++;
  Stream* lru = &r.streams[0];
  Stream* hit = nullptr;
  for (Stream& s : r.streams) {
    if (s.window != 0 && s.nextExpected == page) {
      hit = &s;
      break;
    }
    if (s.lastUse < lru->lastUse) lru = &s;
  }
  if (hit == nullptr) {
    hit = lru;
    hit->window = r.unit;
  } else {
    hit->window = std::min(hit->window * 2, std::max(kMaxWindow, r.unit));
  }
  hit->lastUse = clock_;
  return hit->window;
}

// Reader thread.
ServedRanges::Outcome ServedRanges::Answer(int fd, uint64_t address, FaultStats& stats, int* err) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Range& r : ranges_) {
    if (address < r.start || address - r.start >= r.length) continue;
    uint64_t t0 = NowNs();
    uint64_t page = address & ~(r.unit - 1);
    // The window never leaves the served range: what lies past it may be another range's,
    // another source's, or JavaScript's to answer.
    uint64_t end = page + std::min(WindowFor(r, page), r.start + r.length - page);
    for (const Span& x : r.removed) {  // removed spans read as zeros; read-ahead stops at them
      if (page >= x.start && page < x.end) return ZeroRemoved(fd, r, page, stats, err);
      if (x.start > page) {
        end = std::min(end, x.start);
        break;
      }
    }
    if (r.fixedWindow == 0) {
      for (Stream& s : r.streams) {
        if (s.lastUse == clock_) s.nextExpected = end;
      }
    }
    Outcome o = Fill(fd, r, page, end - page, stats, err);
    if (o == Outcome::kAnswered) stats.RecordLatency(NowNs() - t0);
    return o;
  }
  return Outcome::kNotServed;
}

// Reader thread. The first page at or after `from` (below `end`) that is not mapped yet,
// from one mincore(2) over at most one window; `from` itself if mincore fails (the copy
// will tell why).
uint64_t ServedRanges::NextAbsent(uint64_t from, uint64_t end) {
  uint64_t span = std::min(end - from, kMaxWindow);
  if (span == 0) return end;
  if (mincore(reinterpret_cast<void*>(from), span, residency_.data()) != 0) return from;
  uint64_t pages = span / pageSize_;
  for (uint64_t i = 0; i < pages; i++) {
    if ((residency_[i] & 1) == 0) return from + i * pageSize_;
  }
  return from + span;
}

// Reader thread. One UFFDIO_COPY (or ZEROPAGE) of up to one window from the source at dst.
// When the ioctl answers the faulting page (`answers`), that page is counted before it: the
// ioctl wakes the faulting thread, which may call stats() before this thread runs again; the
// rest of the window is counted just after. So a thread that faulted sees its own fault
// counted, never more than was copied.
IoctlResult ServedRanges::FillOnce(int fd, Range& r, uint64_t dst, uint64_t length, bool answers,
                                   FaultStats& stats) {
  PageSource& src = *r.source;
  uint64_t size = src.size();
  uint64_t so = dst - r.start;  // offset into the source
  const uint64_t unit = r.unit;
  uint64_t n = std::min(length, std::max(kMaxWindow, unit));
  const uint8_t* bytes = nullptr;
  bool zero = so >= size;
  if (!zero && size - so >= unit) {
    n = std::min(n, (size - so) & ~(unit - 1));
    bytes = src.Read(so, n);
    if (bytes == nullptr) return {0, errno};
  } else if (!zero) {
    // The source ends inside this page: its bytes, then zeros.
    uint64_t tail = size - so;
    if (!src.CopyOut(so, tail, tailPage_.data())) return {0, errno};
    memset(tailPage_.data() + tail, 0, unit - tail);
    bytes = tailPage_.data();
    n = unit;
  }
  uint64_t counted = answers ? unit : 0;
  if (answers) stats.CountResolve(counted);
  IoctlResult res = zero ? Zeros(fd, r, dst, n) : Copy(fd, dst, bytes, n, 0);
  uint64_t done = static_cast<uint64_t>(res.bytes);
  if (done > 0) {
    if (answers)
      stats.AddBytes(done - counted);
    else
      stats.CountResolve(done);
  } else if (answers) {
    stats.Uncount(1, counted);
  }
  return res;
}

// Reader thread. Fills [dst, dst + length) from the source. The first page is the faulting
// one and must be answered; the rest is read-ahead, given up quietly on any error. Pages
// already present are skipped (EEXIST: answered by an earlier window, another thread's fault,
// or written by the program), partial copies resumed (EAGAIN with bytes done).
ServedRanges::Outcome ServedRanges::Fill(int fd, Range& r, uint64_t dst, uint64_t length,
                                         FaultStats& stats, int* err) {
  uint64_t pos = 0;
  while (pos < length) {
    IoctlResult res = FillOnce(fd, r, dst + pos, length - pos, pos == 0, stats);
    if (res.bytes > 0) {
      if (pos == 0) r.eexistRepeats = 0;
      pos += static_cast<uint64_t>(res.bytes);
      continue;  // done, or partial: what stopped it shows on the next ioctl
    }
    if (res.err == EEXIST) {
      if (pos == 0 && r.unit != pageSize_) {
        r.eexistRepeats = dst == r.eexistPage ? r.eexistRepeats + 1 : 1;
        r.eexistPage = dst;
        if (r.eexistRepeats >= kMaxHugeEexist) {
          r.eexistRepeats = 0;
          *err = ENOMEM;
          return Outcome::kFailed;
        }
      }
      if (pos == 0) {
        // The faulting page is there already: its thread only needs waking.
        Wake(fd, dst, r.unit);
        stats.CountWake();
      }
      pos = localMemory_ && r.unit == pageSize_
                ? NextAbsent(dst + pos + pageSize_, dst + length) - dst
                : pos + r.unit;
      continue;
    }
    if (pos > 0) return Outcome::kAnswered;         // the faulting page is done; read-ahead stops
    if (res.err == EAGAIN) return Outcome::kRetry;  // a non-cooperative event is unread
    if (res.err == ESRCH) return Outcome::kOwnerGone;
    if (res.err == ENOENT) Wake(fd, dst, r.unit);  // unregistered or unmapped: let it retry
    *err = res.err == 0 ? EIO : res.err;
    return Outcome::kFailed;
  }
  return Outcome::kAnswered;
}

}  // namespace uffd
