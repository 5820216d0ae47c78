// SCM_RIGHTS: passing a userfaultfd to another process over a Unix socket.
#pragma once
#include <napi.h>

namespace uffd {

// Adds the fd-passing functions to the module's exports. JS thread only.
void InitFdPass(Napi::Env env, Napi::Object exports);

}  // namespace uffd
