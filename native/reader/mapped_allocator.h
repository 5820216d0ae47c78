// A standard allocator whose every allocation is its own mmap(2) (freed with munmap): a
// container that uses it never calls malloc or free, so the fault reader may grow it, and any
// thread may grow it under a lock the reader takes (mapped_vector.h says why neither may
// malloc). For the few containers of the reader's layout-event path (the served ranges a
// REMAP, UNMAP or FORK splits, moves or copies), whose elements are not trivially copyable;
// MappedVector is the plain array for those that are. Each allocation takes whole pages:
// meant for a handful of containers, not for many small objects.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <vector>

namespace uffd {

template <typename T>
struct MappedAllocator {
  using value_type = T;
  MappedAllocator() = default;
  template <typename U>
  MappedAllocator(const MappedAllocator<U>&) {}  // NOLINT: converting, as std::allocator

  // Memory that cannot be mapped ends the process, as a failed operator new would on the
  // reader thread (std::terminate).
  T* allocate(size_t n) {
    void* p = mmap(nullptr, Bytes(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { munmap(p, Bytes(n)); }

  template <typename U>
  bool operator==(const MappedAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const MappedAllocator<U>&) const {
    return false;
  }

 private:
  static size_t Bytes(size_t n) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (n * sizeof(T) + page - 1) / page * page;
  }
};

// A std::vector that never calls malloc or free.
template <typename T>
using MappedStdVector = std::vector<T, MappedAllocator<T>>;

}  // namespace uffd
