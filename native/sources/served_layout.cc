// ServedRanges, continued: ranges that follow the memory they serve, and the background fill.
//
// A following range (serve's `follow`) is what a lazy-restore daemon needs, CRIU's among them:
// the program it serves moves memory (mremap: UFFD_EVENT_REMAP), unmaps it (UNMAP) and forks
// (FORK) while pages are still missing. The range moves, is cut, and is copied into the fork
// child's uffd as it was at the fork, each piece reading the source where its bytes were at
// serve(). The pages it has filled are tracked (one bit per unit), so that the fill installs
// only the others, and a page the program dropped (REMOVE, with zeroRemoved) is never filled
// again. Layout changes are applied on the reader thread in message order, before any later
// fault is answered; the fill runs on the same thread between reads, so it can never copy into
// memory whose layout changed under it. The reader thread never calls malloc or free
// (mapped_vector.h): every container here maps its memory (mapped_allocator.h), and the source
// of a piece cut away is released later, on the JS thread (retired_).
#include <algorithm>
#include <cerrno>

#include "sources/page_source.h"

namespace uffd {

namespace {

using Bits = MappedStdVector<uint64_t>;
using Spans = MappedStdVector<ServedRanges::Span>;

bool TestBit(const Bits& bits, uint64_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }

// Bits [from, from + count) of `bits` as a new vector; *set is how many of them are set.
Bits SliceBits(const Bits& bits, uint64_t from, uint64_t count, uint64_t* set) {
  Bits out((count + 63) / 64, 0);
  *set = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (TestBit(bits, from + i)) {
      out[i >> 6] |= 1ull << (i & 63);
      ++*set;
    }
  }
  return out;
}

// The spans of `spans` inside [start, end), clipped.
Spans Clip(const Spans& spans, uint64_t start, uint64_t end) {
  Spans out;
  for (const ServedRanges::Span& s : spans) {
    uint64_t a = std::max(s.start, start), b = std::min(s.end, end);
    if (a < b) out.push_back(ServedRanges::Span{a, b});
  }
  return out;
}

void ResetState(ServedRanges::Range& r) {
  for (auto& s : r.streams) s = ServedRanges::Stream{};
  r.eexistPage = ~0ull;
  r.eexistRepeats = 0;
  r.pendingFrom = 0;
}

}  // namespace

// Under mutex_: marks every unit holding source bytes as still to fill.
// An image clone (no source: its image fills it) is never tracked.
void ServedRanges::TrackPending(Range& r) {
  if (!r.pending.empty() || r.length == 0 || r.source == nullptr) return;
  uint64_t units = r.length / r.unit;
  r.pending.assign((units + 63) / 64, 0);
  r.pendingUnits = 0;
  r.pendingFrom = 0;
  for (uint64_t off = 0; off < r.length;) {
    uint64_t run = 0;
    bool data = r.source->Extent(r.base + off, &run);
    uint64_t end = run >= r.length - off ? r.length : off + std::max<uint64_t>(run, 1);
    if (data) {
      for (uint64_t u = off / r.unit; u < (end + r.unit - 1) / r.unit && u < units; u++) {
        if (TestBit(r.pending, u)) continue;
        r.pending[u >> 6] |= 1ull << (u & 63);
        r.pendingUnits++;
      }
    }
    off = end;
  }
}

// Under mutex_: the units of [start, start + length) are in (or dropped for good).
void ServedRanges::ClearPending(Range& r, uint64_t start, uint64_t length) {
  if (r.pendingUnits == 0 || length == 0) return;
  uint64_t a = std::max(start, r.start), b = std::min(start + length, r.start + r.length);
  if (a >= b) return;
  uint64_t u = (a - r.start) / r.unit, last = (b - r.start + r.unit - 1) / r.unit;
  while (u < last) {
    uint64_t bit = u & 63;
    uint64_t span = std::min<uint64_t>(64 - bit, last - u);
    uint64_t mask = (span == 64 ? ~0ull : (1ull << span) - 1) << bit;
    uint64_t& word = r.pending[u >> 6];
    r.pendingUnits -= static_cast<uint64_t>(__builtin_popcountll(word & mask));
    word &= ~mask;
    u += span;
  }
}

// Reader thread, under mutex_: following ranges that hold `address` inside become two pieces
// that meet there.
void ServedRanges::SplitAt(uint64_t address) {
  for (size_t i = 0; i < ranges_.size(); i++) {
    Range& r = ranges_[i];
    if (!r.follow || address <= r.start || address - r.start >= r.length) continue;
    uint64_t left = address - r.start;
    Range right = r;
    right.start = address;
    right.length = r.length - left;
    right.base = r.base + left;
    right.removed = Clip(r.removed, address, r.start + r.length);
    r.removed = Clip(r.removed, r.start, address);
    r.length = left;
    if (!r.pending.empty()) {
      right.pending =
          SliceBits(r.pending, left / r.unit, right.length / r.unit, &right.pendingUnits);
      r.pending = SliceBits(r.pending, 0, left / r.unit, &r.pendingUnits);
    }
    ResetState(r);
    ResetState(right);
    ranges_.insert(ranges_.begin() + static_cast<std::ptrdiff_t>(i) + 1, std::move(right));
    i++;
  }
}

// Reader thread, under mutex_: following ranges lose [start, end) (the memory is gone).
void ServedRanges::Cut(uint64_t start, uint64_t end) {
  if (start >= end) return;
  SplitAt(start);
  SplitAt(end);
  auto gone = [start, end](const Range& r) {
    return r.follow && r.start >= start && r.start + r.length <= end;
  };
  // Their sources' last references may be these: released on the JS thread (TakeRetired).
  for (Range& r : ranges_) {
    if (gone(r) && r.source != nullptr) retired_.push_back(std::move(r.source));
  }
  ranges_.erase(std::remove_if(ranges_.begin(), ranges_.end(), gone), ranges_.end());
}

// Reader thread.
void ServedRanges::Remap(uint64_t from, uint64_t to, uint64_t len) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (len == 0 || from == to) return;
  // What was at the destination is gone (the kernel sends UNMAP for it only when it was
  // registered): cut first. The two spans never overlap (mremap refuses that).
  Cut(to, to + len);
  SplitAt(from);
  SplitAt(from + len);
  for (Range& r : ranges_) {
    if (!r.follow || r.start < from || r.start + r.length > from + len) continue;
    r.start = r.start - from + to;
    for (Span& s : r.removed) s = Span{s.start - from + to, s.end - from + to};
    ResetState(r);
  }
}

// Reader thread: copies in mapped memory, sources shared (ForAnotherThread allocates nothing).
ServedRanges::RangeList ServedRanges::CloneFollowing() {
  std::lock_guard<std::mutex> lock(mutex_);
  RangeList out;
  for (const Range& r : ranges_) {
    if (!r.follow) continue;
    std::shared_ptr<PageSource> source = r.source->ForAnotherThread(r.source);
    if (!source) continue;  // bytes only this uffd may read: the child's faults go to JS
    Range copy = r;
    copy.source = std::move(source);
    ResetState(copy);
    out.push_back(std::move(copy));
  }
  return out;
}

// JS thread. Under mutex_ nothing calls malloc (see mutex_): the containers map their memory.
void ServedRanges::Adopt(RangeList ranges) {
  Retired retired;  // released after the unlock
  std::lock_guard<std::mutex> lock(mutex_);
  TakeRetired(retired);
  MappedStdVector<std::pair<uint32_t, uint32_t>> ids;  // the parent's id -> ours (pieces share one)
  for (Range& r : ranges) {
    auto it = std::find_if(ids.begin(), ids.end(), [&r](const auto& p) { return p.first == r.id; });
    if (it == ids.end()) it = ids.insert(ids.end(), {r.id, nextId_++});
    r.id = it->second;
    if (tailPage_.size() < r.unit) tailPage_.resize(r.unit);
    if (bounce_.size() < CopyWindow(r.unit)) bounce_.resize(CopyWindow(r.unit));
    ranges_.push_back(std::move(r));
  }
}

// JS thread.
void ServedRanges::StartFill(uint64_t minChunk, uint64_t maxChunk) {
  Retired retired;  // released after the unlock
  std::lock_guard<std::mutex> lock(mutex_);
  TakeRetired(retired);
  filling_ = true;
  minChunk_ = chunk_ = minChunk;
  maxChunk_ = maxChunk;
  for (Range& r : ranges_) TrackPending(r);
}

// Reader thread. The first range with units to fill, from its first such unit: up to one
// chunk of units in a row, in one UFFDIO_COPY (which wakes any thread waiting on them).
ServedRanges::FillStep ServedRanges::FillSome(int fd, FaultStats& stats, int* err) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!filling_) return FillStep::kIdle;
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [](const Range& r) { return r.pendingUnits > 0; });
  if (it == ranges_.end()) {
    filling_ = false;
    *err = 0;
    return FillStep::kDone;
  }
  Range& r = *it;
  uint64_t units = r.length / r.unit;
  uint64_t u = r.pendingFrom;
  while (u < units && !TestBit(r.pending, u)) u++;
  r.pendingFrom = u;
  uint64_t most = std::max<uint64_t>(1, chunk_ / r.unit);
  uint64_t n = 1;
  while (n < most && u + n < units && TestBit(r.pending, u + n)) n++;
  uint64_t dst = r.start + u * r.unit;
  IoctlResult res = FillOnce(fd, r, dst, n * r.unit, false, nullptr);
  if (res.bytes > 0) {
    uint64_t done = static_cast<uint64_t>(res.bytes);
    ClearPending(r, dst, done);
    stats.CountFilled(done);
    chunk_ = std::min(chunk_ + minChunk_, maxChunk_);  // as criu lazy-pages grows it
    return FillStep::kMore;
  }
  switch (res.err) {
    case EEXIST:  // in already: a prefetch thread's, or a copy raced with a demand fault
      ClearPending(r, dst, r.unit);
      return FillStep::kMore;
    case EAGAIN:  // a non-cooperative event waits to be read
      return FillStep::kLater;
    case ENOENT:
      // Not registered here: the chunk crossed a split inside the range (one ioctl must stay in
      // one VMA), or the memory has gone without an event. One unit at a time tells which.
      if (n > 1)
        chunk_ = r.unit;
      else
        ClearPending(r, dst, r.unit);
      return FillStep::kMore;
    case ESRCH:  // the memory's owner has exited: nothing is left to fill
      for (Range& x : ranges_) ClearPending(x, x.start, x.length);
      filling_ = false;
      *err = ESRCH;
      return FillStep::kDone;
    default:
      filling_ = false;
      *err = res.err != 0 ? res.err : EIO;
      return FillStep::kFailed;
  }
}

}  // namespace uffd
