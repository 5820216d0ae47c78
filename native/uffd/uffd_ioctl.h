// The range ioctls as plain functions returning {bytes, err}: used by the JS methods
// (userfaultfd.cc), the page sources and the self-fault guard (reader thread). Any thread.
#pragma once
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>

#include "uffd/kernel_abi.h"

namespace uffd {

struct IoctlResult {
  int64_t bytes;  // the kernel's result field when positive, else 0
  int err;        // 0 on success
};

inline int RetryIoctl(int fd, unsigned long request, void* arg) {
  int rc;
  do rc = ioctl(fd, request, arg);
  while (rc == -1 && errno == EINTR);
  return rc == -1 ? errno : 0;
}

// A failed ioctl leaves bytes done (partial, EAGAIN) or -errno in the result field.
inline IoctlResult Outcome(int err, int64_t field) { return {field > 0 ? field : 0, err}; }

inline IoctlResult Copy(int fd, uint64_t dst, const void* src, uint64_t len, uint64_t mode) {
  uffdio_copy a{dst, reinterpret_cast<uint64_t>(src), len, mode, 0};
  int err = RetryIoctl(fd, UFFDIO_COPY, &a);
  return Outcome(err, a.copy);
}

inline IoctlResult Zeropage(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_zeropage a{{start, len}, mode, 0};
  int err = RetryIoctl(fd, UFFDIO_ZEROPAGE, &a);
  return Outcome(err, a.zeropage);
}

inline IoctlResult Continue(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_continue a{{start, len}, mode, 0};
  int err = RetryIoctl(fd, UFFDIO_CONTINUE, &a);
  return Outcome(err, a.mapped);
}

inline IoctlResult Poison(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_poison_abi a{{start, len}, mode, 0};
  int err = RetryIoctl(fd, kIoctlPoison, &a);
  return Outcome(err, a.updated);
}

inline IoctlResult Move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) {
  uffdio_move_abi a{dst, src, len, mode, 0};
  int err = RetryIoctl(fd, kIoctlMove, &a);
  return Outcome(err, a.move);
}

inline int Wake(int fd, uint64_t start, uint64_t len) {
  uffdio_range a{start, len};
  return RetryIoctl(fd, UFFDIO_WAKE, &a);
}

inline int WriteProtect(int fd, uint64_t start, uint64_t len, uint64_t mode) {
  uffdio_writeprotect a{{start, len}, mode};
  return RetryIoctl(fd, UFFDIO_WRITEPROTECT, &a);
}

}  // namespace uffd
