// Native page sources: memory answered on the reader thread, with no JavaScript per fault.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "reader/mapped_allocator.h"
#include "reader/mapped_vector.h"
#include "uffd/fault_stats.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

class SharedImage;

// Where the bytes of a served range come from. Bytes past size() read as zeros.
class PageSource {
 public:
  virtual ~PageSource() = default;
  virtual uint64_t size() const = 0;
  // Reader thread. The bytes at [offset, offset + len), len <= size() - offset; nullptr on an
  // I/O error (errno set). The pointer stays valid until the next call with the same `bounce`:
  // the caller's page-aligned buffer of at least `len` bytes, which a source that must copy
  // (pread) reads into. The caller's, so that a source read by several threads at once (a
  // fork child's reader and its parent's) needs no buffer per thread, which the reader thread
  // could only make with malloc or thread_local (both allocate: mapped_vector.h).
  virtual const uint8_t* Read(uint64_t offset, uint64_t len, uint8_t* bounce) = 0;
  // Reader thread. Copies [offset, offset + len) into `out` (the partial last page of the
  // source). False on an I/O error (errno set). A mapped file overrides it with pread(2): a
  // user-space load past the end of a file truncated since serve() would raise SIGBUS.
  virtual bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out);
  // Any thread. Writes [offset, offset + len) (len a page multiple, within size()) into the file
  // `fd` at `at` without a bounce buffer, where the source can (a file: sendfile(2), one copy).
  // Returns 0, an errno, or ENOTSUP when the caller must Read() and write itself. `fd`'s file
  // position is used: the caller serialises.
  virtual int WriteTo(int fd, uint64_t at, uint64_t offset, uint64_t len) { return ENOTSUP; }
  // Reader thread. Whether the bytes at `offset` are the source's (true) or read as zeros (a
  // hole, false), and in *run how many bytes from `offset` are alike. By default the source's
  // bytes up to size(), zeros after it; a sparse source (sparse_source.h) has holes inside.
  virtual bool Extent(uint64_t offset, uint64_t* run);
  // Reader thread (a FORK event), which must not allocate (mapped_vector.h). A source that
  // another thread can read at the same time as this one (a fork child's reader): `self` when
  // reads keep no per-call state, nullptr when it cannot be shared (bytes JavaScript owns, or
  // reads that would need a source of their own): the child's faults then go to JavaScript.
  virtual std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self);
};

// Zeros only: UFFDIO_ZEROPAGE.
std::unique_ptr<PageSource> MakeZeroSource();
// Bytes owned by JavaScript (kept alive by the caller while served).
std::unique_ptr<PageSource> MakeMemorySource(const uint8_t* data, uint64_t length);
// A copy of `length` bytes made now (JS thread), owned by the source; nullptr with errno set
// when memory for it cannot be mapped.
std::unique_ptr<PageSource> MakeCopiedMemorySource(const uint8_t* data, uint64_t length);
// A file from `offset`: mapped privately read-only (kMapped), or pread(2) into an aligned
// bounce buffer of `window` bytes, the most one copy takes (kPread). Takes ownership of fd.
// Returns nullptr with errno set and *failed naming the call on failure (a directory: EISDIR;
// a write-only fd: EBADF).
enum class FileMode { kMapped, kPread };
std::unique_ptr<PageSource> MakeFileSource(int fd, uint64_t offset, FileMode mode,
                                           const char** failed,
                                           uint64_t window = 4ull
                                                             << 20 /* ServedRanges::kMaxWindow */);

// The served ranges of one userfaultfd and their read-ahead state. Ranges that follow their
// memory (moved by REMAP, cut by UNMAP, inherited at a fork) and the background fill are in
// served_layout.cc.
class ServedRanges {
 public:
  static constexpr uint64_t kMaxWindow = 4ull << 20;  // adaptive read-ahead cap

  // The most one UFFDIO_COPY of a range takes: a read-ahead window, or one huge page where
  // those are larger (32 MiB over 16 KiB base pages, 512 MiB over 64 KiB).
  static uint64_t CopyWindow(uint64_t unit) { return unit > kMaxWindow ? unit : kMaxWindow; }

  // JS thread, before a range of `unit`-byte huge pages is added: zeros for its copies (huge
  // pages have no UFFDIO_ZEROPAGE). False with errno set when they cannot be mapped.
  static bool PrepareZeros(uint64_t unit);

  enum class Outcome { kNotServed, kAnswered, kFailed, kRetry, kOwnerGone };
  // FillSome: no fill running; a chunk done (call again); an event must be read first
  // (EAGAIN); every page is in, or the memory's owner has gone (err ESRCH): report it; the
  // source failed (err): report it. After kDone and kFailed the fill has stopped.
  enum class FillStep { kIdle, kMore, kLater, kDone, kFailed };

  // A sequential reader: where it faults next if it keeps going, and its current window.
  struct Stream {
    uint64_t nextExpected = 0;
    uint64_t window = 0;
    uint64_t lastUse = 0;
  };
  static constexpr int kStreams = 4;  // interleaved sequential readers tracked per range
  // An image clone's new reader starts with a window of this many units, not one: the pages
  // after a faulting page are filled with it (one source read, filled once for every clone)
  // and mapped at once. A clone's fault costs about ten fills of a page (the clone stops, the
  // reader thread runs, two context switches): in bench/shared-image.js a first window of 4
  // took the first clone's faults from 4201 to 2585 and its time, pinned, from 1.24x to
  // 1.06x serve()'s, for 11% more image memory. The kernel's own fault-around maps 16 pages
  // of a file. `readahead: false` (or a number) keeps the window fixed instead.
  static constexpr uint64_t kImageFirstWindow = 4;
  struct Span {
    uint64_t start, end;  // [start, end)
  };
  struct Range {
    uint32_t id;  // shared by the pieces a following range is cut into
    uint64_t start, length;
    std::shared_ptr<PageSource> source;
    uint64_t fixedWindow;      // 0 = adaptive
    Stream streams[kStreams];  // adaptive only
    uint64_t firstWindow = 0;  // adaptive only: a new reader's window (0: one unit)
    bool zeroRemoved = false;
    // Sorted, disjoint; grown and split on the reader thread (mapped_allocator.h: no malloc).
    MappedStdVector<Span> removed;
    uint64_t unit = 0;  // the mapping's page size (pageSize_, or a huge page)
    // Huge pages: the kernel answers EEXIST, not ENOMEM, to a UFFDIO_COPY that finds no free
    // huge page (the page table entry exists, empty). The faulting page woken on EEXIST then
    // faults again at once, forever. The last page so woken, and how many times in a row.
    uint64_t eexistPage = ~0ull;
    uint32_t eexistRepeats = 0;
    // An image clone: the image, and how faults are answered (CONTINUE or WAKE).
    std::shared_ptr<SharedImage> image;
    bool imageMinor = false;
    // A MISSING clone's fault is answered with UFFDIO_CONTINUE over the window too (the shmem
    // mapping takes it although only MINOR registrations advertise it): the clone maps the
    // window at once instead of faulting again for it. Cleared for good by the first EINVAL
    // (memory that is not shmem, or a kernel that refuses it): WAKE answers from then on.
    bool imageContinue = true;
    // WAKE answers a fault only if the mapping reads the image's page cache. A page that keeps
    // faulting while present is in memory that does not map the image (a range served by
    // mistake, a mapping replaced since): it gets a private copy instead of being woken forever.
    struct Repeat {
      uint64_t page = ~0ull;
      uint32_t count = 0;
    };
    Repeat repeats[8];
    uint64_t base = 0;    // the source offset of `start` (a moved or cut piece's)
    bool follow = false;  // moved by REMAP, cut by UNMAP, inherited by fork children
    // Units of the range whose source bytes are still to be filled (one bit each), tracked for
    // following ranges from Add and for the others from StartFill; empty: not tracked.
    MappedStdVector<uint64_t> pending;
    uint64_t pendingUnits = 0;
    uint64_t pendingFrom = 0;  // no bit below this one is set
  };
  // Every container of the served ranges takes its memory from mmap (mapped_allocator.h): the
  // reader splits, moves and copies ranges on layout events, and must not call malloc.
  using RangeList = MappedStdVector<Range>;
  using Retired = MappedStdVector<std::shared_ptr<PageSource>>;

  explicit ServedRanges(uint64_t pageSize);

  // JS thread. readahead: 0 = adaptive, else a fixed window in bytes (page multiple).
  // zeroRemoved: pages the program drops later (UFFD_EVENT_REMOVE: MADV_DONTNEED, a
  // balloon) read as zeros when touched again, not as the source's bytes.
  // unit: the mapping's page size, 0 for the base page: a hugetlb mapping (2 MiB pages)
  // accepts only whole huge pages in UFFDIO_COPY and has no UFFDIO_ZEROPAGE.
  // follow: the range follows its memory (served_layout.cc).
  uint32_t Add(uint64_t start, uint64_t length, std::shared_ptr<PageSource> source,
               uint64_t readahead, bool zeroRemoved = false, uint64_t unit = 0,
               bool follow = false);
  // JS thread. A clone of a shared image (sources/shared_image.h): [start, start + length) maps
  // the image's memfd privately, whole. Its faults fill the image (read-ahead as Add's) and are
  // answered with UFFDIO_WAKE, or with UFFDIO_CONTINUE when `minor` (registered MISSING|MINOR).
  // Never follows its memory, nor is filled by StartFill.
  uint32_t AddImage(uint64_t start, uint64_t length, std::shared_ptr<SharedImage> image,
                    uint64_t readahead, bool minor);
  bool Remove(uint32_t id);
  void Clear();

  // JS thread, before any serve: whether the uffd's memory is mapped in this process. Only then
  // can mincore(2) here tell which pages of a window are present; a uffd received from another
  // process (or a fork child's) skips present pages one EEXIST at a time instead.
  void SetLocalMemory(bool local) { localMemory_ = local; }

  // Reader thread: answers a fault at `address` when a served range holds it. A minor fault
  // (`minor`) is answered by an image range only.
  Outcome Answer(int fd, uint64_t address, bool minor, bool write, FaultStats& stats, int* err);
  // Reader thread: whether a served range holds `address`, so that its fault can be counted
  // before Answer wakes the faulting thread (which may read stats() at once).
  bool Serves(uint64_t address);
  // Reader thread: pages in [start, end) were dropped (REMOVE/UNMAP); restart read-ahead.
  // `removed` (REMOVE): ranges served with zeroRemoved remember the span as zeros. UNMAP cuts
  // following ranges.
  void Forget(uint64_t start, uint64_t end, bool removed = false);

  // served_layout.cc. Reader thread: [from, from + len) moved to `to` (UFFD_EVENT_REMAP);
  // following ranges move with it.
  void Remap(uint64_t from, uint64_t to, uint64_t len);
  // Reader thread, at a fork: copies of the following ranges as they are now, for the child's
  // uffd (a range whose source cannot be shared with another thread is left out).
  RangeList CloneFollowing();
  // JS thread, before the reader starts: takes the ranges a parent's CloneFollowing made.
  void Adopt(RangeList ranges);
  // JS thread: fill every served range's source pages that are not in yet, in chunks from
  // minChunk growing by minChunk a chunk up to maxChunk, back to minChunk after each demand fault
  // (FillSome), as criu lazy-pages grows its transfers.
  void StartFill(uint64_t minChunk, uint64_t maxChunk);
  // Reader thread, while no message waits: one chunk of the fill. stats counts what it filled.
  FillStep FillSome(int fd, FaultStats& stats, int* err);

 private:
  // Wakes of one present page in a row before it is copied privately (threads of one clone
  // faulting on one page at once each need one, far fewer).
  static constexpr uint32_t kMaxImageRepeats = 64;
  uint32_t Push(Range r);  // JS thread
  Outcome AnswerImage(int fd, Range& r, uint64_t page, uint64_t end, bool write, FaultStats& stats,
                      int* err);
  Outcome ContinueImage(int fd, Range& r, uint64_t page, uint64_t end, FaultStats& stats, int* err);
  bool Repeated(Range& r, uint64_t page, bool wasPresent);
  // Consecutive EEXIST answers to faults on one huge page taken as "no huge page to copy into"
  // (as many threads faulting one page at once would give far fewer).
  static constexpr uint32_t kMaxHugeEexist = 256;
  Outcome ZeroRemoved(int fd, const Range& r, uint64_t page, FaultStats& stats, int* err);
  uint64_t WindowFor(Range& r, uint64_t page);
  Outcome Fill(int fd, Range& r, uint64_t dst, uint64_t length, FaultStats& stats, int* err);
  // stats null: the fill's copy, counted by FillSome.
  IoctlResult FillOnce(int fd, Range& r, uint64_t dst, uint64_t length, bool answers,
                       FaultStats* stats);
  uint64_t NextAbsent(uint64_t from, uint64_t end);
  // Zeros at [dst, dst + length): UFFDIO_ZEROPAGE, or for huge pages a copy of zeros.
  IoctlResult Zeros(int fd, const Range& r, uint64_t dst, uint64_t length);
  // served_layout.cc, under mutex_.
  void TrackPending(Range& r);                                   // JS thread
  void ClearPending(Range& r, uint64_t start, uint64_t length);  // reader thread
  void SplitAt(uint64_t address);                                // reader thread
  void Cut(uint64_t start, uint64_t end);                        // reader thread
  // JS thread, under mutex_: moves the retired sources to `out`, released after the unlock.
  void TakeRetired(Retired& out) { out.swap(retired_); }

  uint64_t pageSize_;
  bool localMemory_ = false;
  // The reader thread takes mutex_ for every fault it answers. Whoever holds it calls neither
  // malloc nor free meanwhile: a thread that waits on malloc (while another forks) would hold
  // the reader with it (mapped_vector.h). The containers below map their memory; a source's
  // last reference is released after the unlock (Remove, Clear, retired_).
  std::mutex mutex_;
  RangeList ranges_;
  // Sources of pieces the reader cut away (UNMAP): released on the JS thread (TakeRetired), as
  // the last reference's release frees the source.
  Retired retired_;
  uint32_t nextId_ = 1;
  uint64_t clock_ = 0;                 // orders stream use (LRU)
  MappedStdVector<uint8_t> tailPage_;  // the zero-padded last page of a source
  // A pread source's window (Read's `bounce`): 4 MiB, left unwritten until a read (zeroing
  // it made every serve() 2 ms slower).
  MappedVector<uint8_t> bounce_;
  MappedStdVector<unsigned char> residency_;  // mincore() vector for one window
  // The fill (served_layout.cc): running, and its chunk bounds and current chunk in bytes.
  bool filling_ = false;
  uint64_t minChunk_ = 0, maxChunk_ = 0, chunk_ = 0;
};

}  // namespace uffd
