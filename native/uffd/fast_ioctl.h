// The two calls a JavaScript fault handler makes per fault, UFFDIO_COPY and UFFDIO_WAKE, as
// plain Node-API functions made for one uffd: one argument fetch, one typed-array lookup, no
// wrapper objects, and no napi_unwrap of `this` (the uffd comes with the function, as its data:
// unwrapping cost 56 of a call's 103 ns, measured; docs/performance.md). Also a C loop of the
// same ioctls inside this process: the like-for-like baseline of bench/ (same fd table, same
// threads as the Node process).
#pragma once
#include <napi.h>

#include <memory>

#include "uffd/fault_stats.h"

namespace uffd {

// What the functions act on. JS thread only: the owner clears it (fd -1) when it closes, and
// the functions then throw; it lives as long as the owner or any of its functions.
struct FastTarget {
  int fd = -1;
  FaultStats* stats = nullptr;
};

// JS thread: { copy(dst, src: Uint8Array, mode, existOk) -> bytes (-1: EEXIST with existOk),
// wake(start, length) } acting on `target`.
Napi::Value MakeFastMethods(Napi::Env env, const std::shared_ptr<FastTarget>& target);

// Module function benchIoctlLoop(fd, op 0 copy | 1 wake | 2 copy-exists, start: bigint, count,
// src?) -> ns: `count` ioctls in a C loop (copy: 4 KiB DONTWAKE into consecutive pages from
// `src`; wake: one page of 64 in turn; copy-exists: UFFDIO_COPY onto one of 64 present pages in
// turn, EEXIST, then UFFDIO_WAKE of it). JS thread.
Napi::Value BenchIoctlLoop(const Napi::CallbackInfo& info);

}  // namespace uffd
