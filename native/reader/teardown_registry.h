// Every open Userfaultfd of the process, across the main thread and Workers, with the ranges
// it registered. A Worker whose own JS thread waits on a fault of its own uffd cannot run its
// cleanup hooks when terminated (the thread is stopped in the kernel), and Node then waits for
// it forever in terminate() and at process.exit(). Another thread unregisters that Worker's
// ranges here, which wakes the waiting thread; the Worker's teardown then closes the uffd.
#pragma once
#include <napi.h>

#include <cstdint>

namespace uffd {

// JS thread of `env`. The id lib/ gives its thread (worker_threads.threadId; 0 on the main).
void SetEnvThreadId(napi_env env, int32_t threadId);

// JS thread of `env`: a uffd opened or adopted there, until Detach (before its fd is closed:
// no unregistering through it afterwards; frees nothing) and Forget (after).
void TrackForTeardown(napi_env env, const void* owner, int fd);
void DetachForTeardown(const void* owner);
void ForgetForTeardown(const void* owner);
// JS thread of the owner: the ranges it registered and unregistered.
void NoteRegistered(const void* owner, uint64_t start, uint64_t length);
void NoteUnregistered(const void* owner, uint64_t start, uint64_t length);

// Any thread. Unregisters every range registered by the uffds of the thread `threadId` (or of
// every thread but `exceptThreadId` when threadId < 0); returns how many ranges.
int ReleaseThreads(int32_t threadId, int32_t exceptThreadId);

// Module exports: setThreadId(id), releaseThreads(threadId, exceptThreadId) -> count.
void InitTeardown(Napi::Env env, Napi::Object exports);

}  // namespace uffd
