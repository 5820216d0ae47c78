#include "fdpass.h"

namespace uffd {

void InitFdPass(Napi::Env, Napi::Object) {}

}  // namespace uffd
