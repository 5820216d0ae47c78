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
      pages_(std::move(pages)),
      tailPage_(pageSize) {}

// Called on the prefetch thread or the reader thread (each its own SetFill).
IoctlResult SetFill::Copy(uint64_t page, uint64_t pos, uint64_t count, uint64_t mode) {
  uint64_t dst = start_ + page * pageSize_;
  uint64_t len = count * pageSize_;
  if (pages_ != nullptr) {
    // The page file holds every page of the set as it is installed: padded, zeros and all.
    const uint8_t* bytes = pages_->Read(pos * pageSize_, len);
    if (bytes == nullptr) return {0, errno != 0 ? errno : EIO};
    return uffd::Copy(fd_, dst, bytes, len, mode);
  }
  PageSource& src = *source_;
  uint64_t size = src.size();
  uint64_t so = page * pageSize_;
  if (so >= size) return Zeropage(fd_, dst, len, mode == 0 ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE);
  if (size - so >= pageSize_) {
    uint64_t n = std::min(len, (size - so) & ~(pageSize_ - 1));
    const uint8_t* bytes = src.Read(so, n);
    if (bytes == nullptr) return {0, errno != 0 ? errno : EIO};
    return uffd::Copy(fd_, dst, bytes, n, mode);
  }
  uint64_t tail = size - so;
  if (!src.CopyOut(so, tail, tailPage_.data())) return {0, errno != 0 ? errno : EIO};
  memset(tailPage_.data() + tail, 0, pageSize_ - tail);
  return uffd::Copy(fd_, dst, tailPage_.data(), pageSize_, mode);
}

}  // namespace uffd
