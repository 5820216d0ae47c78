// A working-set file read and checked off the JS thread, so that serve() returns at once in
// background mode (issue 23: the first byte as lazy's). The format is lib/sources/working-set.ts's
// (its decodeSet is the reference, and writes the files): a 40-byte header, 12-byte runs and the
// first 4 bytes of SHA-256 over everything before it. A failure is described, not thrown: lib/
// turns it into the same coded error (ERR_UFFD_WORKING_SET_*) that decodeSet throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sources/set_order.h"

namespace uffd {

// What the set must match: the served range's page size, source size and length.
struct SetShape {
  uint64_t pageSize = 0, sourceSize = 0, rangeLength = 0;
};

struct SetLoadFailure {
  enum Kind : int32_t {
    kNone = 0,
    kErrno = 1,
    kCorrupt = 2,
    kVersion = 3,
    kMismatch = 4,
    kPages = 5 /* the page file: set_pages.h */
  };
  // Why a file is corrupt (lib/sources/working-set.ts setLoadError words each).
  enum Reason : int32_t {
    kTruncated = 0,  // detail: the file's size
    kNotASet = 1,
    kHeaderSize = 2,
    kRunCount = 3,  // detail: the run count; a: the file's size
    kChecksum = 4,
    kPast2To53 = 5,
    kPageSize = 6,
    kBadRun = 7,    // detail: the run's index
    kTooLarge = 8,  // detail: the file's size; a: the most a set of the range can hold
  };
  Kind kind = kNone;
  Reason reason = kTruncated;
  int64_t detail = 0;            // errno (kErrno), the version (kVersion) or as Reason says
  uint64_t a = 0, b = 0, c = 0;  // kMismatch: the file's page size, source size, range length
};

// Prefetch thread. Reads the set open at `fd` (a regular file, checked by lib/) and its runs
// into `runs` and `pagesOf` (SetOrder::FromWords), and the checksum it ends with (a page file
// names its set by it). Returns false with *failure filled in.
bool LoadSetFile(int fd, const SetShape& shape, std::vector<PageRun>* runs,
                 std::vector<uint64_t>* pagesOf, uint32_t* checksum, SetLoadFailure* failure);

// SHA-256 of `length` bytes into md; false if OpenSSL fails.
bool Sha256(const uint8_t* data, size_t length, uint8_t md[32]);

}  // namespace uffd
