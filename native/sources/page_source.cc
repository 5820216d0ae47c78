#include "sources/page_source.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "sources/shared_image.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

bool PageSource::CopyOut(uint64_t offset, uint64_t len, uint8_t* out) {
  const uint8_t* bytes = Read(offset, len, out);  // `out` is as large: it may bounce there
  if (bytes == nullptr) return false;
  if (bytes != out) memcpy(out, bytes, len);
  return true;
}

bool PageSource::Extent(uint64_t offset, uint64_t* run) {
  uint64_t end = size();
  *run = offset < end ? end - offset : ~0ull - offset;
  return offset < end;
}

std::shared_ptr<PageSource> PageSource::ForAnotherThread(const std::shared_ptr<PageSource>&) {
  return nullptr;
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

// sendfile(2) of [from, from + len) of `in` to `out` at `at`: the page cache to the file, one copy.
// A file that shrank since serve() ends early: the rest is left to the caller (ENODATA).
int SendFile(int in, uint64_t from, int out, uint64_t at, uint64_t len) {
  if (lseek(out, static_cast<off_t>(at), SEEK_SET) < 0) return errno;
  off_t pos = static_cast<off_t>(from);
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = sendfile(out, in, &pos, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EINVAL ? ENOTSUP : errno;  // a file sendfile cannot read
    if (n == 0) return ENODATA;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

class ZeroSource : public PageSource {
 public:
  uint64_t size() const override { return 0; }
  const uint8_t* Read(uint64_t, uint64_t, uint8_t*) override { return nullptr; }
  std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self) override {
    return self;
  }
};

class MemorySource : public PageSource {
 public:
  MemorySource(const uint8_t* data, uint64_t length) : data_(data), length_(length) {}
  uint64_t size() const override { return length_; }
  const uint8_t* Read(uint64_t offset, uint64_t, uint8_t*) override { return data_ + offset; }

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
  const uint8_t* Read(uint64_t offset, uint64_t, uint8_t*) override { return data_ + offset; }
  std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self) override {
    return self;
  }

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
  const uint8_t* Read(uint64_t offset, uint64_t, uint8_t*) override {
    return static_cast<const uint8_t*>(map_) + skew_ + offset;
  }
  bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out) override {
    return PreadFully(fd_, offset_ + offset, len, out);
  }
  int WriteTo(int fd, uint64_t at, uint64_t offset, uint64_t len) override {
    return SendFile(fd_, offset_ + offset, fd, at, len);
  }
  std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self) override {
    return self;
  }

 private:
  int fd_;
  uint64_t offset_;
  void* map_;
  uint64_t mapLength_, skew_, size_;
};

// pread(2) into the caller's bounce buffer, then UFFDIO_COPY: two copies, but no mapping of
// the file.
class PreadFileSource : public PageSource {
 public:
  PreadFileSource(int fd, uint64_t offset, uint64_t size, uint64_t window)
      : fd_(fd), offset_(offset), size_(size), window_(window) {}
  ~PreadFileSource() override { close(fd_); }
  uint64_t size() const override { return size_; }
  const uint8_t* Read(uint64_t offset, uint64_t len, uint8_t* bounce) override {
    len = std::min(len, window_);
    return PreadFully(fd_, offset_ + offset, len, bounce) ? bounce : nullptr;
  }
  bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out) override {
    return PreadFully(fd_, offset_ + offset, len, out);
  }
  int WriteTo(int fd, uint64_t at, uint64_t offset, uint64_t len) override {
    return SendFile(fd_, offset_ + offset, fd, at, len);
  }
  std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self) override {
    return self;
  }

 private:
  int fd_;
  uint64_t offset_, size_;
  uint64_t window_;  // the most one Read() takes (ServedRanges::CopyWindow of the range's unit)
};

// Zeros for huge pages, which have no UFFDIO_ZEROPAGE: a read-only anonymous mapping of one
// copy window, never written, so every page of it is the kernel's shared zero page. Mapped on
// the JS thread (ServedRanges::PrepareZeros) as large as the largest huge page served; a
// smaller one stays mapped, since a reader thread may still copy from it.
struct ZeroWindow {
  const uint8_t* bytes;
  uint64_t size;
};
std::atomic<const ZeroWindow*> gZeros{nullptr};
std::mutex gZerosMutex;

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
                                           const char** failed, uint64_t window) {
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
  if (mode == FileMode::kPread) return std::make_unique<PreadFileSource>(fd, offset, size, window);
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
                           uint64_t readahead, bool zeroRemoved, uint64_t unit, bool follow) {
  Range r{0, start, length, std::move(source), readahead, {}};
  r.follow = follow;
  r.zeroRemoved = zeroRemoved;
  r.unit = unit == 0 ? pageSize_ : unit;
  return Push(std::move(r));
}

// JS thread.
uint32_t ServedRanges::AddImage(uint64_t start, uint64_t length, std::shared_ptr<SharedImage> image,
                                uint64_t readahead, bool minor) {
  Range r{0, start, length, nullptr, readahead, {}};
  r.unit = pageSize_;
  r.image = std::move(image);
  r.imageMinor = minor;
  r.firstWindow = std::min(kImageFirstWindow * r.unit, CopyWindow(r.unit));
  return Push(std::move(r));
}

// JS thread: the range, whole, under the lock the reader answers under.
uint32_t ServedRanges::Push(Range r) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint32_t id = r.id = nextId_++;
  if (r.fixedWindow != 0)
    r.fixedWindow = (std::max(r.fixedWindow, r.unit) + r.unit - 1) & ~(r.unit - 1);
  // An image clone is filled by its image, never tracked nor filled here.
  if (r.image == nullptr && (r.follow || filling_)) TrackPending(r);
  // Mapped memory (mapped_allocator.h): neither this nor the push below calls malloc.
  if (tailPage_.size() < r.unit) tailPage_.resize(r.unit);
  if (bounce_.size() < CopyWindow(r.unit)) bounce_.resize(CopyWindow(r.unit));
  ranges_.push_back(std::move(r));
  return id;
}

// JS thread. Once it returns, the reader no longer uses the range's source: Answer holds
// the same lock for the whole fill.
bool ServedRanges::Remove(uint32_t id) {
  RangeList gone;  // destroyed (their sources released) after the unlock: see mutex_
  Retired retired;
  std::lock_guard<std::mutex> lock(mutex_);
  TakeRetired(retired);
  // Every piece: a following range may have been cut in several.
  for (Range& r : ranges_) {
    if (r.id == id) gone.push_back(std::move(r));
  }
  if (gone.empty()) return false;
  // What is left of them was moved from: erasing frees nothing.
  ranges_.erase(
      std::remove_if(ranges_.begin(), ranges_.end(), [id](const Range& r) { return r.id == id; }),
      ranges_.end());
  return true;
}

void ServedRanges::Clear() {
  RangeList gone;  // released after the unlock
  Retired retired;
  std::lock_guard<std::mutex> lock(mutex_);
  ranges_.swap(gone);
  TakeRetired(retired);
}

// Reader thread.
void ServedRanges::Forget(uint64_t start, uint64_t end, bool removed) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!removed) Cut(start, end);  // following ranges only
  for (Range& r : ranges_) {
    if (start < r.start + r.length && end > r.start) {
      for (Stream& s : r.streams) s = Stream{};
      if (!removed || !r.zeroRemoved) continue;
      // Merge [a, b) into the sorted, disjoint spans, in place (mapped memory: no malloc). Here, on
      // the reader thread, before any later fault is read: a fault in the span can never be filled
      // from the source first.
      uint64_t a = std::max(start, r.start), b = std::min(end, r.start + r.length);
      size_t i = 0, n = r.removed.size();
      while (i < n && r.removed[i].end < a) i++;  // spans wholly before (not touching) [a, b)
      size_t j = i;
      for (; j < n && r.removed[j].start <= b; j++) {  // spans touching or overlapping it
        a = std::min(a, r.removed[j].start);
        b = std::max(b, r.removed[j].end);
      }
      auto at = r.removed.begin() + static_cast<std::ptrdiff_t>(i);
      if (j == i) {
        r.removed.insert(at, Span{a, b});
      } else {
        r.removed[i] = Span{a, b};
        r.removed.erase(at + 1, r.removed.begin() + static_cast<std::ptrdiff_t>(j));
      }
      // A dropped page is never filled again: zeros answer it from now on.
      ClearPending(r, std::max(start, r.start),
                   std::min(end, r.start + r.length) - std::max(start, r.start));
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

// JS thread.
bool ServedRanges::PrepareZeros(uint64_t unit) {
  uint64_t size = CopyWindow(unit);
  std::lock_guard<std::mutex> lock(gZerosMutex);
  const ZeroWindow* now = gZeros.load(std::memory_order_acquire);
  if (now != nullptr && now->size >= size) return true;
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  gZeros.store(new ZeroWindow{static_cast<const uint8_t*>(p), size}, std::memory_order_release);
  return true;
}

// Reader thread, under mutex_. `length` is at most CopyWindow(r.unit), which PrepareZeros
// mapped before the range was added.
IoctlResult ServedRanges::Zeros(int fd, const Range& r, uint64_t dst, uint64_t length) {
  if (r.unit == pageSize_) return Zeropage(fd, dst, length, 0);
  const ZeroWindow* zeros = gZeros.load(std::memory_order_acquire);
  if (zeros == nullptr || zeros->size < r.unit) return {0, ENOMEM};
  return Copy(fd, dst, zeros->bytes, std::min(length, zeros->size), 0);
}

// Reader thread, under mutex_. A fault where a tracked sequential reader was expected next
// doubles that reader's window (up to kMaxWindow); any other fault starts a new reader, in
// place of the least recently used one, with a one-page window (an image clone's:
// kImageFirstWindow pages): random access stays at one page, and up to kStreams interleaved
// sequential readers (threads) each keep their window.
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
    hit->window = std::max(r.unit, r.firstWindow);
  } else {
    hit->window = std::min(hit->window * 2, CopyWindow(r.unit));
  }
  hit->lastUse = clock_;
  return hit->window;
}

// Reader thread.
bool ServedRanges::Serves(uint64_t address) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Range& r : ranges_) {
    if (address >= r.start && address - r.start < r.length) return true;
  }
  return false;
}

// Reader thread.
ServedRanges::Outcome ServedRanges::Answer(int fd, uint64_t address, bool minor, bool write,
                                           FaultStats& stats, int* err) {
  std::lock_guard<std::mutex> lock(mutex_);
  chunk_ = minChunk_;  // the program runs into missing pages: the fill's next chunk is short
  for (Range& r : ranges_) {
    if (address < r.start || address - r.start >= r.length) continue;
    if (minor && !r.image) return Outcome::kNotServed;
    uint64_t t0 = NowNs();
    uint64_t page = address & ~(r.unit - 1);
    // The window never leaves the served range: what lies past it may be another range's,
    // another source's, or JavaScript's to answer.
    uint64_t end = page + std::min(WindowFor(r, page), r.start + r.length - page);
    // A JavaScript source fills one page at a time here: the rest is its own read-ahead's.
    if (r.image && !r.image->nativeSource()) end = page + r.unit;
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
    Outcome o = r.image ? AnswerImage(fd, r, page, end, write, stats, err)
                        : Fill(fd, r, page, end - page, stats, err);
    if (o == Outcome::kAnswered) stats.RecordLatency(NowNs() - t0);
    return o;
  }
  return Outcome::kNotServed;
}

// Reader thread, under mutex_: a clone's fault. The image gets the window's absent pages from
// its source (once, whichever clone asks first); the clone then maps them from the page cache.
ServedRanges::Outcome ServedRanges::AnswerImage(int fd, Range& r, uint64_t page, uint64_t end,
                                                bool write, FaultStats& stats, int* err) {
  bool wasPresent = false;
  int rc = r.image->Fill(page - r.start, end - page, true, write, &wasPresent);
  if (rc == SharedImage::kNeedsJs) return Outcome::kNotServed;
  if (rc != 0) {
    *err = rc;
    return Outcome::kFailed;
  }
  if (r.imageMinor) return ContinueImage(fd, r, page, end, stats, err);
  bool repeated = Repeated(r, page, wasPresent);
  if (!repeated && r.imageContinue) {
    Outcome o = ContinueImage(fd, r, page, end, stats, err);
    if (o != Outcome::kFailed) return o;
    // Anything it could not map (the layout changed: ENOENT) is woken as before, to fault again.
    if (*err == EINVAL) r.imageContinue = false;
    *err = 0;
  }
  if (repeated) {
    // This memory does not read the image's page cache: a private copy of the page answers it.
    int e = r.image->ReadPage(page - r.start, tailPage_.data());
    stats.CountResolve(r.unit);
    IoctlResult res = e == 0 ? Copy(fd, page, tailPage_.data(), r.unit, 0) : IoctlResult{0, e};
    if (res.bytes > 0) return Outcome::kAnswered;
    stats.Uncount(1, r.unit);
    if (res.err != EEXIST) {
      if (res.err == EAGAIN) return Outcome::kRetry;
      if (res.err == ESRCH) return Outcome::kOwnerGone;
      *err = res.err == 0 ? EIO : res.err;
      return Outcome::kFailed;
    }
  }
  // Counted before the wake: the woken thread may read stats() at once.
  stats.CountResolve(r.unit);
  stats.CountWake();
  int werr = Wake(fd, page, end - page);
  if (werr == 0) return Outcome::kAnswered;
  stats.Uncount(1, r.unit);
  *err = werr;
  return Outcome::kFailed;
}

// Reader thread, under mutex_: UFFDIO_CONTINUE over [page, end), pages this clone maps already
// skipped (EEXIST). A page punched out by the cap since it was filled (EFAULT) is woken: it
// faults again and is read again.
ServedRanges::Outcome ServedRanges::ContinueImage(int fd, Range& r, uint64_t page, uint64_t end,
                                                  FaultStats& stats, int* err) {
  uint64_t pos = 0, length = end - page;
  while (pos < length) {
    if (pos == 0) stats.CountResolve(r.unit);
    IoctlResult res = Continue(fd, page + pos, length - pos, 0);
    if (res.bytes > 0) {
      if (pos == 0) stats.AddBytes(static_cast<uint64_t>(res.bytes) - r.unit);
      pos += static_cast<uint64_t>(res.bytes);
      continue;
    }
    if (pos == 0) stats.Uncount(1, r.unit);
    if (res.err == EEXIST || (res.err == EFAULT && pos == 0)) {
      if (pos == 0) {
        stats.CountResolve(r.unit);
        stats.CountWake();
        Wake(fd, page, r.unit);
      }
      pos += r.unit;
      continue;
    }
    if (pos > 0) return Outcome::kAnswered;  // the faulting page is mapped; read-ahead stops
    if (res.err == EAGAIN) return Outcome::kRetry;
    if (res.err == ESRCH) return Outcome::kOwnerGone;
    if (res.err == ENOENT) Wake(fd, page, r.unit);
    *err = res.err == 0 ? EIO : res.err;
    return Outcome::kFailed;
  }
  return Outcome::kAnswered;
}

// Reader thread, under mutex_. Whether a fault on a page that was present already has come
// kMaxImageRepeats times in a row (see Range::repeats).
bool ServedRanges::Repeated(Range& r, uint64_t page, bool wasPresent) {
  Range::Repeat& s = r.repeats[(page / r.unit) % 8];
  if (!wasPresent) {
    if (s.page == page) s.count = 0;
    return false;
  }
  if (s.page != page) {
    s.page = page;
    s.count = 1;
    return false;
  }
  if (++s.count < kMaxImageRepeats) return false;
  s.count = 0;
  return true;
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

// Reader thread. One UFFDIO_COPY (or ZEROPAGE) of up to one window from the source at dst,
// within one extent of it (its bytes, or a hole of zeros).
// When the ioctl answers the faulting page (`answers`), that page is counted before it: the
// ioctl wakes the faulting thread, which may call stats() before this thread runs again; the
// rest of the window is counted just after. So a thread that faulted sees its own fault
// counted, never more than was copied. Without stats (the fill) nothing is counted here.
IoctlResult ServedRanges::FillOnce(int fd, Range& r, uint64_t dst, uint64_t length, bool answers,
                                   FaultStats* stats) {
  PageSource& src = *r.source;
  uint64_t so = dst - r.start + r.base;  // offset into the source
  const uint64_t unit = r.unit;
  uint64_t n = std::min(length, CopyWindow(unit));
  uint64_t run = 0;
  bool zero = !src.Extent(so, &run);
  const uint8_t* bytes = nullptr;
  if (zero) {
    n = std::min(n, std::max(unit, run & ~(unit - 1)));
  } else if (run >= unit) {
    n = std::min(n, run & ~(unit - 1));
    bytes = src.Read(so, n, bounce_.data());
    if (bytes == nullptr) return {0, errno};
  } else {
    // The source's bytes end inside this page: they, then zeros.
    if (!src.CopyOut(so, run, tailPage_.data())) return {0, errno};
    memset(tailPage_.data() + run, 0, unit - run);
    bytes = tailPage_.data();
    n = unit;
  }
  uint64_t counted = answers ? unit : 0;
  if (stats != nullptr && answers) stats->CountResolve(counted);
  IoctlResult res = zero ? Zeros(fd, r, dst, n) : Copy(fd, dst, bytes, n, 0);
  uint64_t done = static_cast<uint64_t>(res.bytes);
  if (stats == nullptr) return res;
  if (done > 0) {
    if (answers)
      stats->AddBytes(done - counted);
    else
      stats->CountResolve(done);
  } else if (answers) {
    stats->Uncount(1, counted);
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
    IoctlResult res = FillOnce(fd, r, dst + pos, length - pos, pos == 0, &stats);
    if (res.bytes > 0) {
      if (pos == 0) r.eexistRepeats = 0;
      ClearPending(r, dst + pos, static_cast<uint64_t>(res.bytes));
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
        ClearPending(r, dst, r.unit);
        Wake(fd, dst, r.unit);
        stats.CountWake();
      }
      pos = localMemory_ && r.unit == pageSize_
                ? NextAbsent(dst + pos + pageSize_, dst + length) - dst
                : pos + r.unit;
      continue;
    }
    if (res.err == ENOENT && pos == 0 && length > r.unit) {
      // One ioctl must stay inside one VMA: the window may cross a split the program made
      // (mprotect) inside the range. The faulting page alone, then.
      length = r.unit;
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
