#include "sources/set_order.h"

#include <algorithm>

namespace uffd {

void SetOrder::Load(std::vector<PageRun> runs) {
  runs_ = std::move(runs);
  starts_.clear();
  starts_.reserve(runs_.size() + 1);
  uint64_t pos = 0;
  for (const PageRun& r : runs_) {
    starts_.push_back(pos);
    pos += r.count;
  }
  starts_.push_back(pos);
}

std::vector<PageRun> SetOrder::FromWords(const uint32_t* words, size_t count, uint64_t pages,
                                         std::vector<uint64_t>* pagesOf, int64_t* bad) {
  std::vector<PageRun> runs;
  runs.reserve(count);
  pagesOf->assign((pages + 63) / 64, 0);
  *bad = -1;
  for (size_t i = 0; i < count; i++) {
    uint64_t first = words[i * 3], n = words[i * 3 + 1];
    uint32_t flags = words[i * 3 + 2];
    if (n == 0 || first >= pages || n > pages - first || (flags & ~0xff01u) != 0) {
      *bad = static_cast<int64_t>(i);
      return {};
    }
    for (uint64_t p = first; p < first + n; p++) {
      uint64_t& w = (*pagesOf)[p >> 6];
      if ((w >> (p & 63)) & 1) {
        *bad = static_cast<int64_t>(i);
        return {};
      }
      w |= 1ull << (p & 63);
    }
    runs.push_back(PageRun{static_cast<uint32_t>(first), static_cast<uint32_t>(n), flags & 1});
  }
  return runs;
}

size_t SetOrder::RunAt(uint64_t pos) const {
  if (pos >= pages()) return runs_.size();
  auto it = std::upper_bound(starts_.begin(), starts_.end(), pos);
  return static_cast<size_t>(it - starts_.begin()) - 1;
}

void SetOrder::BuildIndex() {
  byPage_.resize(runs_.size());
  for (size_t i = 0; i < runs_.size(); i++) byPage_[i] = static_cast<uint32_t>(i);
  std::sort(byPage_.begin(), byPage_.end(),
            [this](uint32_t a, uint32_t b) { return runs_[a].first < runs_[b].first; });
  ready_.store(true, std::memory_order_release);
}

int64_t SetOrder::PositionOf(uint64_t page) const {
  // The last run starting at or before `page` (runs never overlap: checked when loaded).
  auto it = std::upper_bound(byPage_.begin(), byPage_.end(), page,
                             [this](uint64_t p, uint32_t i) { return p < runs_[i].first; });
  if (it == byPage_.begin()) return -1;
  const PageRun& r = runs_[*(it - 1)];
  if (page - r.first >= r.count) return -1;
  return static_cast<int64_t>(starts_[*(it - 1)] + (page - r.first));
}

}  // namespace uffd
