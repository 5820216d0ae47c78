// The two calls a JavaScript fault handler makes per fault, UFFDIO_COPY and UFFDIO_WAKE, as
// plain Node-API methods: one argument fetch, one typed-array lookup, no wrapper objects. The
// node-addon-api methods (userfaultfd.cc) cost a few hundred ns more per call, which is most of
// a JS handler's overhead over C. Also a C loop of the same ioctls inside this process: the
// like-for-like baseline of bench/ (same fd table, same threads as the Node process).
#pragma once
#include <napi.h>

namespace uffd {

// JS thread, at module init: adds copyFast(dst, src, mode) and wakeFast(start, length) to the
// Userfaultfd class's prototype.
void AddFastMethods(Napi::Env env, Napi::Function userfaultfdClass);

// Module function benchIoctlLoop(fd, op 0 copy | 1 wake, start: bigint, count, src?) -> ns:
// `count` ioctls in a C loop (copy: 4 KiB DONTWAKE into consecutive pages from `src`; wake: one
// page of 64 in turn). JS thread.
Napi::Value BenchIoctlLoop(const Napi::CallbackInfo& info);

}  // namespace uffd
