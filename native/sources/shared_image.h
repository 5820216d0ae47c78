// A shared image: one memfd of the image's size, filled lazily from a page source, that every
// clone maps privately (MAP_PRIVATE). A clone's fault on a page the memfd lacks is answered by
// writing that page into the memfd and mapping it into the clone with UFFDIO_CONTINUE (or, where
// the kernel refuses CONTINUE on a MISSING registration, waking the clone to fault it in);
// once there, the page is mapped by every clone that touches it, from the page cache, and a
// clone's write copies it privately. The reader threads of all the clones' uffds and the
// prefetch thread fill through Fill(), under one lock, skipping the pages already there: a page
// is read from the source at most once while it stays in the memfd, however many clones fault
// on it at once. With a byte cap, the pages touched least recently are punched out
// (FALLOC_FL_PUNCH_HOLE) and read again when touched again.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "reader/mapped_allocator.h"
#include "reader/mapped_vector.h"
#include "sources/page_source.h"
#include "sources/working_set.h"

namespace uffd {

class SharedImage {
 public:
  // Fill(): the first page is absent and the source is JavaScript's (PageSource.custom/http).
  static constexpr int kNeedsJs = -1;

  // Relaxed atomics, never reset.
  struct Counters {
    std::atomic<uint64_t> sourceReads{0};   // reads of the source (one per run of absent pages)
    std::atomic<uint64_t> sourceBytes{0};   // bytes read from the source, or written by JS
    std::atomic<uint64_t> filledPages{0};   // pages in the memfd now
    std::atomic<uint64_t> evictedPages{0};  // pages punched out by the cap
    std::atomic<uint64_t> demandFills{0};   // faults that found their page absent
    std::atomic<uint64_t> sharedFaults{0};  // faults that found their page filled already
    std::atomic<uint64_t> prefetched{0};    // pages the prefetch thread filled
  };

  // JS thread. Owns memfd (already `size` bytes long) and the source (null: JavaScript fills
  // through Write). maxBytes: the cap, 0 for none. record: keep the order of first fills.
  // Allocates every per-page table now: no fill ever allocates.
  SharedImage(int memfd, uint64_t size, uint64_t pageSize, std::shared_ptr<PageSource> source,
              uint64_t maxBytes, bool record);
  ~SharedImage();
  SharedImage(const SharedImage&) = delete;
  SharedImage& operator=(const SharedImage&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  uint64_t pageSize() const { return pageSize_; }
  uint64_t maxBytes() const { return maxBytes_; }
  bool nativeSource() const { return source_ != nullptr; }
  Counters& counters() { return counters_; }

  // Any thread: the page holding byte `offset` is in the memfd.
  bool Present(uint64_t offset) const;
  // Any thread (the clones' reader threads, the prefetch thread). Makes the pages of
  // [offset, offset + length) present. `demand`: a fault's (its first page is the faulting one,
  // recorded and moved to the front of the eviction order; `write`: a write fault). Read-ahead
  // past the first page stops quietly on an error. Returns 0, kNeedsJs or the errno of the first
  // page. *wasPresent: the first page was there already (another fault or prefetch filled it).
  int Fill(uint64_t offset, uint64_t length, bool demand, bool write, bool* wasPresent);
  // JS thread: bytes a JavaScript source read, for [offset, offset + length) (page multiple, or
  // up to the image's end); pages already present are left as they are. 0 or an errno.
  int Write(uint64_t offset, const uint8_t* data, uint64_t length);
  // Any thread: the page at `offset` copied out of the memfd into `out` (pageSize bytes).
  int ReadPage(uint64_t offset, uint8_t* out);
  // Prefetch thread: whether filling goes on (false once the cap is reached).
  bool BelowCap() const;
  // JS thread: the first fills recorded, as runs in order (write: the first fault was a write).
  std::vector<PageRun> Recorded();

 private:
  static constexpr uint32_t kNil = ~0u;
  static constexpr uint32_t kWriteBit = 1u << 31;  // in order_: the first fault wrote

  // Under mutex_: pages [p, q) from the source into the memfd. 0 or errno.
  int ReadIn(uint64_t p, uint64_t q);
  int WriteAll(const uint8_t* data, uint64_t length, uint64_t at);
  int Zero(uint64_t at, uint64_t length);
  void MarkPresent(uint64_t p);  // under mutex_
  void Touch(uint64_t p);        // under mutex_: to the front of the eviction order
  void Unlink(uint64_t p);       // under mutex_
  void EvictOver(uint64_t keepFirst, uint64_t keepLast);  // under mutex_

  int fd_;
  uint64_t size_, pageSize_, pages_, maxBytes_;
  std::shared_ptr<PageSource> source_;
  std::unique_ptr<std::atomic<uint64_t>[]> present_;  // one bit a page
  std::mutex mutex_;
  std::vector<uint8_t> tail_;  // the zero-padded last page of the source
  // A pread source's window (PageSource::Read), under mutex_: mapped, as a reader thread reads
  // the source through it (mapped_allocator.h).
  MappedVector<uint8_t> bounce_;  // a pread source's (a file is sent, not read): sized, unwritten
  bool directWrites_ = true;  // the source writes into the memfd itself (WriteTo) until it cannot
  // The cap's order: a list through the present pages, most recently touched first.
  std::vector<uint32_t> prev_, next_;
  uint32_t head_ = kNil, tail_page_ = kNil;
  // record: pages in the order of their first fill (kWriteBit: by a write fault).
  bool record_;
  std::vector<uint32_t> order_;
  std::vector<uint8_t> recorded_;  // one byte a page: recorded already
  Counters counters_;
};

}  // namespace uffd
