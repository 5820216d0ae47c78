// Built on systems without userfaultfd: the module loads, says so, and the
// TypeScript layer serves everything from the simulator.
#include <napi.h>

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("supported", Napi::Boolean::New(env, false));
  return exports;
}

NODE_API_MODULE(userfaultfd, Init)
