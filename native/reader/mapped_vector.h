// A growable array of trivially copyable items in memory mapped for it (mmap, grown with
// mremap): growing or freeing it never calls malloc or free.
//
// Why: the fault reader must always get back to read(2). A thread that forks holds glibc's
// malloc locks from before its clone(2) until after, and with EVENT_FORK the kernel keeps that
// clone(2) waiting until every uffd's reader has read the FORK event. A reader that called malloc
// meanwhile (to grow its queue to JavaScript) would wait for the forking thread, which waits for
// it: the process hangs. So what the reader thread grows is one of these (docs/design.md,
// "Threads").
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

namespace uffd {

template <typename T>
class MappedVector {
  static_assert(std::is_trivially_copyable<T>::value, "items are moved with memcpy");

 public:
  MappedVector() = default;
  ~MappedVector() { Free(); }
  MappedVector(const MappedVector&) = delete;
  MappedVector& operator=(const MappedVector&) = delete;
  MappedVector(MappedVector&& o) noexcept { swap(o); }
  MappedVector& operator=(MappedVector&& o) noexcept {
    if (this != &o) {
      Free();
      swap(o);
    }
    return *this;
  }

  void swap(MappedVector& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& back() { return data_[size_ - 1]; }
  void clear() { size_ = 0; }

  // Room for `n` items. Memory that cannot be mapped ends the process, as a failed operator
  // new would on this thread (std::terminate).
  void reserve(size_t n) {
    if (n <= capacity_) return;
    size_t bytes = Bytes(n);
    void* p = data_ == nullptr
                  ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                  : mremap(data_, Bytes(capacity_), bytes, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) std::abort();
    data_ = static_cast<T*>(p);
    capacity_ = bytes / sizeof(T);
  }

  // As std::vector's: new items are zero. Only those within the old capacity are written:
  // memory freshly mapped (or mremap'd) is zero already, and a large buffer is then not
  // touched page by page before its first use.
  void resize(size_t n) {
    if (n > size_) {
      size_t old = capacity_;
      reserve(n);
      if (size_ < old)
        memset(static_cast<void*>(data_ + size_), 0, ((n < old ? n : old) - size_) * sizeof(T));
    }
    size_ = n;
  }

  void push_back(const T& v) { append(&v, 1); }
  void append(const T* items, size_t n) {
    Grow(size_ + n);
    memcpy(static_cast<void*>(data_ + size_), items, n * sizeof(T));
    size_ += n;
  }
  // Inserts `v` before item `i` (i <= size()).
  void insert(size_t i, const T& v) {
    Grow(size_ + 1);
    memmove(static_cast<void*>(data_ + i + 1), data_ + i, (size_ - i) * sizeof(T));
    data_[i] = v;
    size_++;
  }
  // Removes items [first, last).
  void erase(size_t first, size_t last) {
    memmove(static_cast<void*>(data_ + first), data_ + last, (size_ - last) * sizeof(T));
    size_ -= last - first;
  }

 private:
  void Grow(size_t n) {
    if (n > capacity_) reserve(n > 2 * capacity_ ? n : 2 * capacity_);
  }
  static size_t Bytes(size_t items) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (items * sizeof(T) + page - 1) / page * page;
  }
  void Free() {
    if (data_ != nullptr) munmap(data_, Bytes(capacity_));
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace uffd
