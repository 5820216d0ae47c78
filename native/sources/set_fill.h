// Copies of a working set's pages into its served range, for the prefetch thread and for the
// reader's read-ahead along the set: from the range's source (a zero-padded last page, zeros
// past its end), or from the set's compact page file, which holds the set's pages in recorded
// order (a cold image is then read sequentially, not at scattered offsets). One per thread:
// a file source reads into this object's bounce buffer, mapped (mapped_vector.h), since the
// reader thread's copies go through one and it must not call malloc.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "reader/mapped_vector.h"
#include "sources/page_source.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

class SetFill {
 public:
  // `pages`: the compact page file (its data from offset 0), or null.
  SetFill(int fd, uint64_t start, uint64_t pageSize, std::shared_ptr<PageSource> source,
          std::shared_ptr<PageSource> pages);

  // One UFFDIO_COPY (or ZEROPAGE past the source's end) of pages [page, page + count) of the
  // range, which stand at position `pos` of the set; `mode`: UFFDIO_COPY_MODE_DONTWAKE or 0.
  // What the kernel took may be less (res.bytes): the caller goes on from there.
  IoctlResult Copy(uint64_t page, uint64_t pos, uint64_t count, uint64_t mode);
  bool compact() const { return pages_ != nullptr; }

 private:
  int fd_;
  uint64_t start_, pageSize_;
  std::shared_ptr<PageSource> source_, pages_;
  MappedVector<uint8_t> tailPage_;
  MappedVector<uint8_t> bounce_;  // Read's, one window (ServedRanges::CopyWindow): 4 MiB,
                                  // so left unwritten until used (its pages fault in one by one)
};

}  // namespace uffd
