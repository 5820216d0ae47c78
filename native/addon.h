// Per-environment state shared by the native classes (one per main thread or Worker).
#pragma once
#include <napi.h>

namespace uffd {

struct AddonData {
  Napi::FunctionReference errorClass;       // lib/errors.ts UffdError, set by the loader
  Napi::FunctionReference userfaultfdClass;  // native Userfaultfd, to wrap fds from FORK events
  Napi::FunctionReference regionClass;
};

inline AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

}  // namespace uffd
