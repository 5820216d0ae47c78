// errno -> JavaScript errors. Every native failure is reported through here, so that the
// mapping from errno to `code` exists once.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace uffd {

constexpr int64_t kNoBytes = -1;

struct ErrnoName {
  int value;
  const char* name;
};
extern const ErrnoName kErrnoNames[];
extern const size_t kErrnoNameCount;

// The symbolic name of an errno ("EEXIST"), or "E<n>" for one we do not name.
const char* ErrnoCode(int err);

// A UffdError (lib/base/errors.ts) with code, errno, syscall and, when not kNoBytes, bytes.
// JS thread only.
Napi::Error UffdError(Napi::Env env, int err, const char* syscall, int64_t bytes = kNoBytes,
                      const char* detail = nullptr);

// A UffdError whose code is not an errno name: a signal caught during a memory access
// ('SIGBUS', errno 135 as in lib/base/errors.ts ERRNO). JS thread only.
Napi::Error UffdErrorWithCode(Napi::Env env, const char* code, int errnum, const char* syscall,
                              const std::string& message);

// Throws UffdError. JS thread only.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, int64_t bytes = kNoBytes,
                             const char* detail = nullptr);

// Bad arguments that slipped past the TypeScript checks (a direct caller of the binding).
[[noreturn]] void ThrowTypeError(Napi::Env env, const char* message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const char* message);

}  // namespace uffd
