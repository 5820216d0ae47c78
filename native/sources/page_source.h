// Native page sources: memory answered on the reader thread, with no JavaScript per fault.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "reader/mapped_vector.h"
#include "uffd/fault_stats.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

// Where the bytes of a served range come from. Bytes past size() read as zeros.
class PageSource {
 public:
  virtual ~PageSource() = default;
  virtual uint64_t size() const = 0;
  // Reader thread. The bytes at [offset, offset + len), len <= size() - offset; nullptr on an
  // I/O error (errno set). The pointer stays valid until the next call.
  virtual const uint8_t* Read(uint64_t offset, uint64_t len) = 0;
  // Reader thread. Copies [offset, offset + len) into `out` (the partial last page of the
  // source). False on an I/O error (errno set). A mapped file overrides it with pread(2): a
  // user-space load past the end of a file truncated since serve() would raise SIGBUS.
  virtual bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out);
};

// Zeros only: UFFDIO_ZEROPAGE.
std::unique_ptr<PageSource> MakeZeroSource();
// Bytes owned by JavaScript (kept alive by the caller while served).
std::unique_ptr<PageSource> MakeMemorySource(const uint8_t* data, uint64_t length);
// A copy of `length` bytes made now (JS thread), owned by the source; nullptr with errno set
// when memory for it cannot be mapped.
std::unique_ptr<PageSource> MakeCopiedMemorySource(const uint8_t* data, uint64_t length);
// A file from `offset`: mapped privately read-only (kMapped), or pread(2) into an aligned
// bounce buffer (kPread). Takes ownership of fd. Returns nullptr with errno set and *failed
// naming the call on failure (a directory: EISDIR; a write-only fd: EBADF).
enum class FileMode { kMapped, kPread };
std::unique_ptr<PageSource> MakeFileSource(int fd, uint64_t offset, FileMode mode,
                                           const char** failed);

// The served ranges of one userfaultfd and their read-ahead state.
class ServedRanges {
 public:
  static constexpr uint64_t kMaxWindow = 4ull << 20;  // adaptive read-ahead cap

  enum class Outcome { kNotServed, kAnswered, kFailed, kRetry, kOwnerGone };

  explicit ServedRanges(uint64_t pageSize);

  // JS thread. readahead: 0 = adaptive, else a fixed window in bytes (page multiple).
  // zeroRemoved: pages the program drops later (UFFD_EVENT_REMOVE: MADV_DONTNEED, a
  // balloon) read as zeros when touched again, not as the source's bytes.
  // unit: the mapping's page size, 0 for the base page: a hugetlb mapping (2 MiB pages)
  // accepts only whole huge pages in UFFDIO_COPY and has no UFFDIO_ZEROPAGE.
  uint32_t Add(uint64_t start, uint64_t length, std::shared_ptr<PageSource> source,
               uint64_t readahead, bool zeroRemoved = false, uint64_t unit = 0);
  bool Remove(uint32_t id);
  void Clear();

  // JS thread, before any serve: whether the uffd's memory is mapped in this process. Only then
  // can mincore(2) here tell which pages of a window are present; a uffd received from another
  // process (or a fork child's) skips present pages one EEXIST at a time instead.
  void SetLocalMemory(bool local) { localMemory_ = local; }

  // Reader thread: answers a fault at `address` when a served range holds it.
  Outcome Answer(int fd, uint64_t address, FaultStats& stats, int* err);
  // Reader thread: pages in [start, end) were dropped (REMOVE/UNMAP); restart read-ahead.
  // `removed` (REMOVE): ranges served with zeroRemoved remember the span as zeros.
  void Forget(uint64_t start, uint64_t end, bool removed = false);

 private:
  // A sequential reader: where it faults next if it keeps going, and its current window.
  struct Stream {
    uint64_t nextExpected = 0;
    uint64_t window = 0;
    uint64_t lastUse = 0;
  };
  static constexpr int kStreams = 4;  // interleaved sequential readers tracked per range
  struct Span {
    uint64_t start, end;  // [start, end)
  };
  struct Range {
    uint32_t id;
    uint64_t start, length;
    std::shared_ptr<PageSource> source;
    uint64_t fixedWindow;      // 0 = adaptive
    Stream streams[kStreams];  // adaptive only
    bool zeroRemoved = false;
    MappedVector<Span> removed;  // sorted, disjoint; grown on the reader thread (mapped_vector.h)
    uint64_t unit = 0;           // the mapping's page size (pageSize_, or a huge page)
    // Huge pages: the kernel answers EEXIST, not ENOMEM, to a UFFDIO_COPY that finds no free
    // huge page (the page table entry exists, empty). The faulting page woken on EEXIST then
    // faults again at once, forever. The last page so woken, and how many times in a row.
    uint64_t eexistPage = ~0ull;
    uint32_t eexistRepeats = 0;
  };
  // Consecutive EEXIST answers to faults on one huge page taken as "no huge page to copy into"
  // (as many threads faulting one page at once would give far fewer).
  static constexpr uint32_t kMaxHugeEexist = 256;
  Outcome ZeroRemoved(int fd, const Range& r, uint64_t page, FaultStats& stats, int* err);
  uint64_t WindowFor(Range& r, uint64_t page);
  Outcome Fill(int fd, Range& r, uint64_t dst, uint64_t length, FaultStats& stats, int* err);
  IoctlResult FillOnce(int fd, Range& r, uint64_t dst, uint64_t length, bool answers,
                       FaultStats& stats);
  uint64_t NextAbsent(uint64_t from, uint64_t end);
  // Zeros at [dst, dst + length): UFFDIO_ZEROPAGE, or for huge pages a copy of zeros.
  IoctlResult Zeros(int fd, const Range& r, uint64_t dst, uint64_t length);

  uint64_t pageSize_;
  bool localMemory_ = false;
  // The reader thread takes mutex_ for every fault it answers. Whoever holds it allocates
  // nothing and frees nothing meanwhile: a thread that waits on malloc (while another forks)
  // would hold the reader with it (mapped_vector.h). The JS thread allocates before it locks
  // and frees after it unlocks.
  std::mutex mutex_;
  std::vector<Range> ranges_;
  uint32_t nextId_ = 1;
  uint64_t clock_ = 0;                    // orders stream use (LRU)
  std::vector<uint8_t> tailPage_;         // the zero-padded last page of a source
  std::vector<unsigned char> residency_;  // mincore() vector for one window
};

}  // namespace uffd
