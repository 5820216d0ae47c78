#include "sources/set_fill.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace uffd {

SetFill::SetFill(int fd, uint64_t start, uint64_t pageSize, std::shared_ptr<PageSource> source,
                 std::shared_ptr<PageSource> pages)
    : fd_(fd),
      start_(start),
      pageSize_(pageSize),
      source_(std::move(source)),
      pages_(std::move(pages)) {
  tailPage_.resize(pageSize);
  bounce_.resize(ServedRanges::CopyWindow(pageSize));
}

// Called on the prefetch thread or the reader thread (each its own SetFill).
IoctlResult SetFill::Copy(uint64_t page, uint64_t pos, uint64_t count, uint64_t mode) {
  uint64_t dst = start_ + page * pageSize_;
  // At most one bounce buffer a call: the caller goes on from what was copied.
  uint64_t len = std::min<uint64_t>(count * pageSize_, bounce_.size());
  if (pages_ != nullptr) {
    // The page file holds every page of the set as it is installed: padded, zeros and all.
    const uint8_t* bytes = pages_->Read(pos * pageSize_, len, bounce_.data());
    if (bytes == nullptr) return {0, errno != 0 ? errno : EIO};
    return uffd::Copy(fd_, dst, bytes, len, mode);
  }
  // As ServedRanges::FillOnce: the source's bytes, a zero-padded last page, zeros in its holes
  // (a sparse source) and past its end.
  PageSource& src = *source_;
  uint64_t so = page * pageSize_;
  uint64_t run = 0;
  if (!src.Extent(so, &run)) {
    return Zeropage(fd_, dst, std::min(len, std::max(pageSize_, run & ~(pageSize_ - 1))),
                    mode == 0 ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE);
  }
  if (run >= pageSize_) {
    uint64_t n = std::min(len, run & ~(pageSize_ - 1));
    const uint8_t* bytes = src.Read(so, n, bounce_.data());
    if (bytes == nullptr) return {0, errno != 0 ? errno : EIO};
    return uffd::Copy(fd_, dst, bytes, n, mode);
  }
  if (!src.CopyOut(so, run, tailPage_.data())) return {0, errno != 0 ? errno : EIO};
  memset(tailPage_.data() + run, 0, pageSize_ - run);
  return uffd::Copy(fd_, dst, tailPage_.data(), pageSize_, mode);
}

}  // namespace uffd
