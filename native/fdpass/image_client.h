// The client end of a shared image's handoff (lib/tools/image-client.ts): connect to the
// listener, receive the image's fd with its description, later send the clone's uffd back on
// the same connection. The wait runs on the thread pool, never on the JS thread.
#pragma once
#include <napi.h>

namespace uffd {

// Adds receiveFdMessage and sendOnSocket to the module's exports. JS thread only.
void InitImageClient(Napi::Env env, Napi::Object exports);

}  // namespace uffd
