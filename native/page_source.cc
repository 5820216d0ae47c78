#include "page_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "uffd_ioctl.h"

namespace uffd {

namespace {

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

// The file mapped once: UFFDIO_COPY then reads the page cache directly, one copy in all.
class MappedFileSource : public PageSource {
 public:
  MappedFileSource(void* map, uint64_t mapLength, uint64_t skew, uint64_t size)
      : map_(map), mapLength_(mapLength), skew_(skew), size_(size) {}
  ~MappedFileSource() override {
    if (map_ != nullptr) munmap(map_, mapLength_);
  }
  uint64_t size() const override { return size_; }
  const uint8_t* Read(uint64_t offset, uint64_t) override {
    return static_cast<const uint8_t*>(map_) + skew_ + offset;
  }

 private:
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
    uint64_t done = 0;
    len = std::min(len, ServedRanges::kMaxWindow);
    while (done < len) {
      ssize_t n = pread(fd_, bounce_ + done, len - done, static_cast<off_t>(offset_ + offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return nullptr;
      if (n == 0) {  // the file shrank since serve(): the rest reads as zeros
        memset(bounce_ + done, 0, len - done);
        break;
      }
      done += static_cast<uint64_t>(n);
    }
    return bounce_;
  }

 private:
  int fd_;
  uint64_t offset_, size_;
  uint8_t* bounce_;
};

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

std::unique_ptr<PageSource> MakeFileSource(int fd, uint64_t offset, FileMode mode) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    return nullptr;
  }
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  uint64_t size = offset < fileSize ? fileSize - offset : 0;
  if (mode == FileMode::kPread) {
    void* bounce = nullptr;
    if (posix_memalign(&bounce, 4096, ServedRanges::kMaxWindow) != 0) {
      close(fd);
      errno = ENOMEM;
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
      return nullptr;
    }
    madvise(map, mapLength, MADV_SEQUENTIAL);
  }
  close(fd);  // the mapping keeps the file
  return std::make_unique<MappedFileSource>(map, mapLength, skew, size);
}

ServedRanges::ServedRanges(uint64_t pageSize) : pageSize_(pageSize), tailPage_(pageSize) {
  ranges_.reserve(8);
}

uint32_t ServedRanges::Add(uint64_t start, uint64_t length, std::shared_ptr<PageSource> source,
                           uint64_t readahead) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint32_t id = nextId_++;
  ranges_.push_back({id, start, length, std::move(source), readahead, pageSize_, 0});
  return id;
}

bool ServedRanges::Remove(uint32_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(ranges_.begin(), ranges_.end(), [id](const Range& r) { return r.id == id; });
  if (it == ranges_.end()) return false;
  ranges_.erase(it);
  return true;
}

void ServedRanges::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  ranges_.clear();
}

bool ServedRanges::Contains(uint64_t address) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Range& r : ranges_) {
    if (address >= r.start && address - r.start < r.length) return true;
  }
  return false;
}

void ServedRanges::Forget(uint64_t start, uint64_t end) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Range& r : ranges_) {
    if (start < r.start + r.length && end > r.start) {
      r.window = pageSize_;
      r.nextExpected = 0;
    }
  }
}

// Grows while the faults are sequential, back to one page on a jump.
uint64_t ServedRanges::WindowFor(Range& r, uint64_t page) {
  if (r.fixedWindow != 0) return r.fixedWindow;
  r.window = page == r.nextExpected ? std::min(r.window * 2, kMaxWindow) : pageSize_;
  return r.window;
}

ServedRanges::Outcome ServedRanges::Answer(int fd, uint64_t address, FaultStats& stats, int* err) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Range& r : ranges_) {
    if (address < r.start || address - r.start >= r.length) continue;
    uint64_t t0 = NowNs();
    uint64_t page = address & ~(pageSize_ - 1);
    uint64_t end = std::min(page + WindowFor(r, page), r.start + r.length);
    r.nextExpected = end;
    Outcome o = Fill(fd, r, page, end - page, stats, err);
    if (o == Outcome::kAnswered) stats.RecordLatency(NowNs() - t0);
    return o;
  }
  return Outcome::kNotServed;
}

// Copies [dst, dst + length) from the source. The first page is the faulting one and must be
// answered; the rest is read-ahead and is given up quietly on any error. Present pages are
// skipped (EEXIST), partial copies resumed (EAGAIN with bytes).
ServedRanges::Outcome ServedRanges::Fill(int fd, Range& r, uint64_t dst, uint64_t length,
                                         FaultStats& stats, int* err) {
  PageSource& src = *r.source;
  uint64_t size = src.size();
  uint64_t pos = 0;
  while (pos < length) {
    uint64_t so = dst + pos - r.start;  // offset into the source
    uint64_t chunk = std::min(length - pos, kMaxWindow);
    IoctlResult res;
    if (so >= size) {
      res = Zeropage(fd, dst + pos, chunk, 0);
    } else if (size - so >= pageSize_) {
      uint64_t n = std::min(chunk, (size - so) & ~(pageSize_ - 1));
      const uint8_t* bytes = src.Read(so, n);
      if (bytes == nullptr) res = {0, errno};
      else res = Copy(fd, dst + pos, bytes, n, 0);
    } else {
      const uint8_t* bytes = src.Read(so, size - so);
      if (bytes == nullptr) {
        res = {0, errno};
      } else {
        memcpy(tailPage_.data(), bytes, size - so);
        memset(tailPage_.data() + (size - so), 0, pageSize_ - (size - so));
        res = Copy(fd, dst + pos, tailPage_.data(), pageSize_, 0);
      }
    }
    if (res.bytes > 0) {
      stats.CountResolve(static_cast<uint64_t>(res.bytes));
      stats.CountWake();
      pos += static_cast<uint64_t>(res.bytes);
      if (res.err == 0 || res.err == EAGAIN) continue;
    }
    if (res.err == 0) continue;
    if (res.err == EEXIST) {
      // Answered already (another thread's fault on the same page): wake, skip the page.
      if (pos == 0) {
        Wake(fd, dst, pageSize_);
        stats.CountWake();
      }
      pos += pageSize_;
      continue;
    }
    if (pos > 0) return Outcome::kAnswered;  // the faulting page is done; read-ahead stops
    if (res.err == EAGAIN) return Outcome::kRetry;  // a non-cooperative event is unread
    if (res.err == ESRCH) return Outcome::kOwnerGone;
    *err = res.err;
    return Outcome::kFailed;
  }
  return Outcome::kAnswered;
}

}  // namespace uffd
