// CLOCK_MONOTONIC in nanoseconds (the clock process.hrtime.bigint() reads). Any thread.
#pragma once
#include <time.h>

#include <cstdint>

namespace uffd {

inline uint64_t MonotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace uffd
