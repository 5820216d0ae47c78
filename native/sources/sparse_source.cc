#include "sources/sparse_source.h"

#include <algorithm>

namespace uffd {

namespace {

class SparseSource : public PageSource {
 public:
  SparseSource(std::shared_ptr<PageSource> backing, std::vector<SparseRun> runs)
      : backing_(std::move(backing)), runs_(std::move(runs)) {}

  uint64_t size() const override {
    return runs_.empty() ? 0 : runs_.back().at + runs_.back().length;
  }

  // Reader thread. [offset, offset + len) lies in one run's bytes (Extent said so).
  const uint8_t* Read(uint64_t offset, uint64_t len, uint8_t* bounce) override {
    const SparseRun& r = *Find(offset);
    return backing_->Read(r.offset + offset - r.at, len, bounce);
  }
  bool CopyOut(uint64_t offset, uint64_t len, uint8_t* out) override {
    const SparseRun& r = *Find(offset);
    return backing_->CopyOut(r.offset + offset - r.at, len, out);
  }

  // Reader thread: a run's bytes up to its end (or the backing source's end), else the hole up
  // to the next run.
  bool Extent(uint64_t offset, uint64_t* run) override {
    auto next = std::upper_bound(runs_.begin(), runs_.end(), offset,
                                 [](uint64_t o, const SparseRun& r) { return o < r.at; });
    if (next != runs_.begin()) {
      const SparseRun& r = *(next - 1);
      if (offset - r.at < r.length) {
        uint64_t in = offset - r.at;
        uint64_t available =
            backing_->size() > r.offset + in ? backing_->size() - r.offset - in : 0;
        uint64_t bytes = std::min(r.length - in, available);
        if (bytes > 0) {
          *run = bytes;
          return true;
        }
        *run = r.length - in;  // past the backing source's end: zeros to the run's end
        return false;
      }
    }
    *run = next == runs_.end() ? ~0ull - offset : next->at - offset;
    return false;
  }

  std::shared_ptr<PageSource> ForAnotherThread(const std::shared_ptr<PageSource>& self) override {
    std::shared_ptr<PageSource> backing = backing_->ForAnotherThread(backing_);
    if (!backing) return nullptr;
    return backing == backing_ ? self : nullptr;  // a new one would allocate
  }

 private:
  // The run holding `offset` (a run's byte: the caller checked with Extent).
  const SparseRun* Find(uint64_t offset) const {
    auto next = std::upper_bound(runs_.begin(), runs_.end(), offset,
                                 [](uint64_t o, const SparseRun& r) { return o < r.at; });
    return &*(next - 1);
  }

  std::shared_ptr<PageSource> backing_;
  std::vector<SparseRun> runs_;
};

}  // namespace

std::unique_ptr<PageSource> MakeSparseSource(std::shared_ptr<PageSource> backing,
                                             std::vector<SparseRun> runs) {
  return std::make_unique<SparseSource>(std::move(backing), std::move(runs));
}

}  // namespace uffd
