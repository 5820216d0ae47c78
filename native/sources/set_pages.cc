#include "sources/set_pages.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace uffd {

namespace {

// lib/sources/set-pages.ts: MAGIC, SET_PAGES_VERSION, HEADER, SAMPLES and header()'s offsets.
constexpr uint32_t kMagic = 0x50574655;  // 'UFWP', little-endian
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeader = 96, kSamples = 8, kHashAt = 48, kHashBytes = 32;

// lib/sources/set-pages.ts PagesReason.
enum class PagesReason : int32_t {
  kErrno = 0,
  kTruncated = 1,
  kNotPages = 2,
  kVersion = 3,
  kHeaderSum = 4,
  kPageSize = 5,
  kOtherSet = 6,
  kSize = 7,
  kSourceSize = 8,
  kModified = 9,
  kSamples = 10,
};
using R = PagesReason;

uint32_t U32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t U64(const uint8_t* p) { return U32(p) | static_cast<uint64_t>(U32(p + 4)) << 32; }

bool Refuse(SetLoadFailure* f, PagesReason reason, uint64_t a = 0, uint64_t b = 0) {
  f->kind = SetLoadFailure::kPages;
  f->reason = static_cast<SetLoadFailure::Reason>(reason);
  f->a = a;
  f->b = b;
  return false;
}

// Up to `n` bytes at `at`; fewer only at the end of the file. -1 with errno set.
int64_t ReadAt(int fd, uint8_t* into, uint64_t n, uint64_t at) {
  uint64_t done = 0;
  while (done < n) {
    ssize_t got = pread(fd, into + done, n - done, static_cast<off_t>(at + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) break;
    done += static_cast<uint64_t>(got);
  }
  return static_cast<int64_t>(done);
}

// The set's page at each of set-pages.ts samplePositions(count), as its pagesAt finds them.
std::vector<uint64_t> SampledPages(const std::vector<PageRun>& runs, uint64_t count) {
  uint64_t k = std::min(kSamples, count);
  std::vector<uint64_t> out;
  uint64_t pos = 0, j = 0;
  for (const PageRun& r : runs) {
    for (; j < k; j++) {
      uint64_t at = ((2 * j + 1) * count) / (2 * k);
      if (at >= pos + r.count) break;
      out.push_back(r.first + (at - pos));
    }
    pos += r.count;
  }
  return out;
}

}  // namespace

void RefusePages(SetLoadFailure* f, int err) { Refuse(f, R::kErrno, static_cast<uint64_t>(err)); }

// Called on the prefetch thread. The checks in checkSetPages's order, so that a file gets the
// same error from both.
bool CheckSetPages(int pagesFd, const PagesSource& source, uint64_t pageSize,
                   const std::vector<PageRun>& runs, uint32_t setChecksum, SetLoadFailure* f) {
  struct stat st;
  if (fstat(pagesFd, &st) != 0) return Refuse(f, R::kErrno, errno);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t h[kHeader];
  int64_t got = size < kHeader ? 0 : ReadAt(pagesFd, h, kHeader, 0);
  if (got < 0) return Refuse(f, R::kErrno, errno);
  if (static_cast<uint64_t>(got) != kHeader) return Refuse(f, R::kTruncated, size);
  if (U32(h) != kMagic) return Refuse(f, R::kNotPages);
  uint32_t version = static_cast<uint32_t>(h[4] | h[5] << 8);
  if (version != kVersion) return Refuse(f, R::kVersion, version);
  uint8_t md[kHashBytes];
  if (static_cast<uint32_t>(h[6] | h[7] << 8) != kHeader || !Sha256(h, kHeader - 4, md) ||
      U32(md) != U32(h + kHeader - 4))
    return Refuse(f, R::kHeaderSum);
  if (U32(h + 8) != pageSize) return Refuse(f, R::kPageSize, U32(h + 8));
  uint64_t count = 0;
  for (const PageRun& r : runs) count += r.count;
  if (U32(h + 12) != setChecksum || U64(h + 16) != count) return Refuse(f, R::kOtherSet);
  if (size != pageSize * (1 + count)) return Refuse(f, R::kSize, size, count);
  if (fstat(source.fd, &st) != 0) return Refuse(f, R::kErrno, errno);
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  uint64_t sourceSize = fileSize > source.offset ? fileSize - source.offset : 0;
  if (U64(h + 24) != sourceSize || U64(h + 40) != source.offset)
    return Refuse(f, R::kSourceSize, U64(h + 24), sourceSize);
  uint64_t mtimeNs = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                     static_cast<uint64_t>(st.st_mtim.tv_nsec);
  if (U64(h + 32) != mtimeNs) return Refuse(f, R::kModified);
  // Each sampled page as a range installs it: zero-padded, zeros past the source's end.
  std::vector<uint64_t> pages = SampledPages(runs, count);
  std::vector<uint8_t> bytes(pages.size() * pageSize, 0);
  for (size_t i = 0; i < pages.size(); i++) {
    uint64_t at = pages[i] * pageSize;
    uint64_t want = at < sourceSize ? std::min(pageSize, sourceSize - at) : 0;
    if (ReadAt(source.fd, bytes.data() + i * pageSize, want, source.offset + at) < 0)
      return Refuse(f, R::kErrno, errno);
  }
  if (!Sha256(bytes.data(), bytes.size(), md) || memcmp(md, h + kHashAt, kHashBytes) != 0)
    return Refuse(f, R::kSamples);
  return true;
}

}  // namespace uffd
