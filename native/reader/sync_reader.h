// Blocking reads of a userfaultfd by the thread that calls them (uffd.readSync): a thread that
// owns its uffd, usually a Worker, answers its faults itself, without the fault reader's hop
// from its thread to the JS thread.
#pragma once
#include <napi.h>

#include <cstddef>

#include "uffd/kernel_abi.h"

namespace uffd {

// Calling thread (a JS thread). Waits until messages are queued on `fd` or `timeoutMs` passes
// (-1: no limit), then reads up to `max` of them into `out` in one read(2). Returns the count
// (0 on timeout), or -errno. The wait is cut into slices: between two, it returns 0 early when
// `env` can no longer run JavaScript (Worker.terminate(), process exit), which a blocked poll(2)
// would otherwise never notice, and the Worker could never be joined.
long ReadMessagesSync(napi_env env, int fd, uffd_msg* out, size_t max, int timeoutMs);

}  // namespace uffd
