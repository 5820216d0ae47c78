// Counters and a latency histogram for one userfaultfd. Written by the reader thread and the
// JS thread with relaxed atomics; no allocation, no lock.
#pragma once
#include <atomic>
#include <cstdint>

namespace uffd {

class FaultStats {
 public:
  static constexpr int kSubBits = 3;  // 8 sub-buckets per power of two: <= 12.5% error
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;

  void CountFault() { faults_.fetch_add(1, std::memory_order_relaxed); }
  void UncountFault() { faults_.fetch_sub(1, std::memory_order_relaxed); }  // to be retried
  void CountResolve(uint64_t bytes) {
    copies_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void AddBytes(uint64_t bytes) {
    if (bytes != 0) bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Takes back what CountResolve counted in advance for an ioctl that did nothing.
  void Uncount(uint64_t copies, uint64_t bytes) {
    if (copies != 0) copies_.fetch_sub(copies, std::memory_order_relaxed);
    if (bytes != 0) bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  void CountWake() { wakeups_.fetch_add(1, std::memory_order_relaxed); }
  void RecordLatency(uint64_t ns) {
    histogram_[Bucket(ns)].fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t faults() const { return faults_.load(std::memory_order_relaxed); }
  uint64_t copies() const { return copies_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

  // The latency below which `fraction` of recorded faults fall, in ns (0 when none).
  uint64_t Percentile(double fraction) const {
    uint64_t counts[kBuckets];
    uint64_t total = 0;
    for (int i = 0; i < kBuckets; i++)
      total += counts[i] = histogram_[i].load(std::memory_order_relaxed);
    if (total == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(fraction * static_cast<double>(total - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += counts[i];
      if (seen >= rank) return Midpoint(i);
    }
    return Midpoint(kBuckets - 1);
  }

 private:
  static int Bucket(uint64_t v) {
    if (v < (1u << kSubBits)) return static_cast<int>(v);
    int exp = 63 - __builtin_clzll(v);
    int sub = static_cast<int>((v >> (exp - kSubBits)) & ((1u << kSubBits) - 1));
    return ((exp - kSubBits + 1) << kSubBits) + sub;
  }
  static uint64_t Midpoint(int bucket) {
    if (bucket < (1 << kSubBits)) return static_cast<uint64_t>(bucket);
    int exp = (bucket >> kSubBits) + kSubBits - 1;
    uint64_t sub = static_cast<uint64_t>(bucket & ((1 << kSubBits) - 1));
    uint64_t low = (1ull << exp) | (sub << (exp - kSubBits));
    return low + (1ull << (exp - kSubBits)) / 2;
  }

  std::atomic<uint64_t> faults_{0}, copies_{0}, bytes_{0}, wakeups_{0};
  std::atomic<uint64_t> histogram_[kBuckets] = {};
};

}  // namespace uffd
