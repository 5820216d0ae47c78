// One bit per page of a range, set from any thread (relaxed atomics: a bit, once set, stays),
// read by JavaScript: which pages of a working set were installed ahead of the program.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

namespace uffd {

class PageBitmap {
 public:
  explicit PageBitmap(uint64_t pages)
      : words_((pages + 63) / 64), bits_(new std::atomic<uint64_t>[words_]) {
    for (uint64_t i = 0; i < words_; i++) bits_[i].store(0, std::memory_order_relaxed);
  }
  // Any thread: pages [first, first + count).
  void SetRange(uint64_t first, uint64_t count) {
    while (count > 0) {
      uint64_t bit = first & 63;
      uint64_t n = count < 64 - bit ? count : 64 - bit;
      uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
      bits_[first >> 6].fetch_or(mask, std::memory_order_relaxed);
      first += n;
      count -= n;
    }
  }
  // Any thread: whether page `page` was set.
  bool Test(uint64_t page) const {
    return (bits_[page >> 6].load(std::memory_order_relaxed) >> (page & 63)) & 1;
  }
  // Any thread: the bits as bytes, page i at bit (i & 7) of byte i >> 3.
  void CopyTo(uint8_t* out, uint64_t bytes) const {
    for (uint64_t b = 0; b < bytes; b++) {
      out[b] = static_cast<uint8_t>(bits_[b >> 3].load(std::memory_order_relaxed) >> ((b & 7) * 8));
    }
  }
  uint64_t bytes() const { return words_ * 8; }

 private:
  uint64_t words_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
};

}  // namespace uffd
