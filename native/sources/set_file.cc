#include "sources/set_file.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace uffd {

namespace {

constexpr uint32_t kMagic = 0x53574655;  // 'UFWS', little-endian
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeader = 40, kRun = 12, kTrailer = 4;
constexpr uint64_t kMaxSafe = (1ull << 53) - 1;  // lib/ keeps sizes as JavaScript numbers

uint32_t U32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint64_t U64(const uint8_t* p) { return U32(p) | static_cast<uint64_t>(U32(p + 4)) << 32; }

bool Fail(SetLoadFailure* f, SetLoadFailure::Kind kind, SetLoadFailure::Reason reason,
          int64_t detail = 0, uint64_t a = 0) {
  f->kind = kind;
  f->reason = reason;
  f->detail = detail;
  f->a = a;
  return false;
}

bool Corrupt(SetLoadFailure* f, SetLoadFailure::Reason reason, int64_t detail = 0, uint64_t a = 0) {
  return Fail(f, SetLoadFailure::kCorrupt, reason, detail, a);
}

// The whole file, no more than `max` bytes (a file that grows meanwhile is read up to its size
// at fstat). False with errno set.
bool ReadAll(int fd, uint64_t max, std::vector<uint8_t>* out, SetLoadFailure* f) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return Fail(f, SetLoadFailure::kErrno, SetLoadFailure::kTruncated, errno);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max) return Corrupt(f, SetLoadFailure::kTooLarge, static_cast<int64_t>(size), max);
  out->resize(size);
  uint64_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, out->data() + got, size - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(f, SetLoadFailure::kErrno, SetLoadFailure::kTruncated, errno);
    if (n == 0) break;
    got += static_cast<uint64_t>(n);
  }
  out->resize(got);
  return true;
}

// The first 4 bytes of SHA-256, big-endian: lib/sources/working-set.ts checksum().
uint32_t Checksum(const uint8_t* data, size_t length) {
  uint8_t md[32];
  if (!Sha256(data, length, md)) return 0;
  return static_cast<uint32_t>(md[0]) << 24 | static_cast<uint32_t>(md[1]) << 16 |
         static_cast<uint32_t>(md[2]) << 8 | md[3];
}

}  // namespace

// Any thread. OpenSSL is Node's own (its symbols are exported to addons).
bool Sha256(const uint8_t* data, size_t length, uint8_t md[32]) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outLength = 0;
  if (EVP_Digest(data, length, out, &outLength, EVP_sha256(), nullptr) != 1 || outLength != 32)
    return false;
  memcpy(md, out, 32);
  return true;
}

// Called on the prefetch thread. The checks in decodeSet's order, so that a file gets the same
// error from both.
bool LoadSetFile(int fd, const SetShape& shape, std::vector<PageRun>* runs,
                 std::vector<uint64_t>* pagesOf, uint32_t* checksum, SetLoadFailure* f) {
  uint64_t pages = shape.rangeLength / shape.pageSize;
  uint64_t max = kHeader + kTrailer + kRun * std::min<uint64_t>(pages, 0xffffffffu);
  std::vector<uint8_t> b;
  if (!ReadAll(fd, max, &b, f)) return false;
  const uint8_t* p = b.data();
  uint64_t size = b.size();
  if (size < kHeader + kTrailer) return Corrupt(f, SetLoadFailure::kTruncated, size);
  if (U32(p) != kMagic) return Corrupt(f, SetLoadFailure::kNotASet);
  uint32_t version = U16(p + 4);
  if (version != kVersion)
    return Fail(f, SetLoadFailure::kVersion, SetLoadFailure::kTruncated, version);
  if (U16(p + 6) != kHeader) return Corrupt(f, SetLoadFailure::kHeaderSize);
  uint64_t count = U32(p + 12);
  uint64_t end = kHeader + count * kRun;
  if (size != end + kTrailer) return Corrupt(f, SetLoadFailure::kRunCount, count, size);
  if (Checksum(p, end) != U32(p + end)) return Corrupt(f, SetLoadFailure::kChecksum);
  *checksum = U32(p + end);
  uint64_t pageSize = U32(p + 8), sourceSize = U64(p + 16), rangeLength = U64(p + 24);
  if (sourceSize > kMaxSafe || rangeLength > kMaxSafe)
    return Corrupt(f, SetLoadFailure::kPast2To53);
  if (pageSize == 0 || (pageSize & (pageSize - 1)) != 0 || rangeLength % pageSize != 0)
    return Corrupt(f, SetLoadFailure::kPageSize);
  if (pageSize != shape.pageSize || sourceSize != shape.sourceSize ||
      rangeLength != shape.rangeLength) {
    f->kind = SetLoadFailure::kMismatch;
    f->a = pageSize;
    f->b = sourceSize;
    f->c = rangeLength;
    return false;
  }
  std::vector<uint32_t> words(count * 3);
  for (uint64_t i = 0; i < words.size(); i++) words[i] = U32(p + kHeader + i * 4);
  int64_t bad;
  *runs = SetOrder::FromWords(words.data(), count, pages, pagesOf, &bad);
  if (bad >= 0) return Corrupt(f, SetLoadFailure::kBadRun, bad);
  return true;
}

}  // namespace uffd
