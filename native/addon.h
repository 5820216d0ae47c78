// Per-environment state shared by the native classes (one per main thread or Worker).
#pragma once
#include <napi.h>
#include <uv.h>

#include <vector>

namespace uffd {

class Userfaultfd;

struct AddonData {
  Napi::FunctionReference errorClass;        // lib/base/errors.ts UffdError, set by the loader
  Napi::FunctionReference userfaultfdClass;  // native Userfaultfd, to wrap fds from FORK events
  Napi::FunctionReference regionClass;

  // The teardown watch (JS thread only). When a Worker is terminated, Node waits for every
  // thread-pool request before it runs any cleanup hook; a region.read blocked on a fault of
  // this environment's own uffd would wait forever. While accesses are in flight, a uv_prepare
  // handle checks on each loop turn whether JS can still run, and when it cannot, closes every
  // uffd of the environment, which releases the faults.
  std::vector<Userfaultfd*> uffds;
  int accesses = 0;
  uv_prepare_t* prepare = nullptr;
  napi_async_cleanup_hook_handle prepareCleanup = nullptr;
  Napi::ObjectReference
      canary;  // a plain object: setting a property on it fails once JS cannot run

  // Fork events' fds handed to JavaScript and not yet wrapped or closed by it. A Worker
  // terminated in between runs no more JS: they are closed with the environment.
  std::vector<int> handedFds;
  ~AddonData();
};

inline AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// JS thread only.
void HandOverFd(Napi::Env env, int fd);  // JavaScript owns `fd` from now on
void TakeOverFd(Napi::Env env, int fd);  // JavaScript wrapped or closed it
void TrackUffd(Napi::Env env, Userfaultfd* u);
void UntrackUffd(Napi::Env env, Userfaultfd* u);
void BeginEnvAccess(Napi::Env env);
void EndEnvAccess(Napi::Env env);

}  // namespace uffd
