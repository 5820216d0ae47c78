#include "uffd/errors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "addon.h"

namespace uffd {

// The errnos this package names: one table, read by ErrnoCode and exported to JavaScript
// (constants.errno), where the simulator and lib/base/errors.ts use the same names and numbers.
#define UFFD_ERRNO(e) {e, #e}
const ErrnoName kErrnoNames[] = {
    UFFD_ERRNO(EPERM),      UFFD_ERRNO(ENOENT),       UFFD_ERRNO(ESRCH),
    UFFD_ERRNO(EINTR),      UFFD_ERRNO(EIO),          UFFD_ERRNO(EBADF),
    UFFD_ERRNO(EAGAIN),     UFFD_ERRNO(ENOMEM),       UFFD_ERRNO(EACCES),
    UFFD_ERRNO(EFAULT),     UFFD_ERRNO(EBUSY),        UFFD_ERRNO(EEXIST),
    UFFD_ERRNO(ENODEV),     UFFD_ERRNO(ENOTDIR),      UFFD_ERRNO(EISDIR),
    UFFD_ERRNO(EINVAL),     UFFD_ERRNO(EMFILE),       UFFD_ERRNO(ENFILE),
    UFFD_ERRNO(ENOTTY),     UFFD_ERRNO(EFBIG),        UFFD_ERRNO(ENOSPC),
    UFFD_ERRNO(ENOSYS),     UFFD_ERRNO(EOPNOTSUPP),   UFFD_ERRNO(ECONNREFUSED),
    UFFD_ERRNO(ECONNRESET), UFFD_ERRNO(EPIPE),        UFFD_ERRNO(ENOTSOCK),
    UFFD_ERRNO(EADDRINUSE), UFFD_ERRNO(ENAMETOOLONG), UFFD_ERRNO(EMSGSIZE),
    UFFD_ERRNO(EPROTO),     UFFD_ERRNO(ETIMEDOUT),    UFFD_ERRNO(ESPIPE),
    UFFD_ERRNO(ECANCELED),
};
#undef UFFD_ERRNO
const size_t kErrnoNameCount = sizeof kErrnoNames / sizeof kErrnoNames[0];

const char* ErrnoCode(int err) {
  for (size_t i = 0; i < kErrnoNameCount; i++) {
    if (kErrnoNames[i].value == err) return kErrnoNames[i].name;
  }
  static thread_local char buf[16];
  snprintf(buf, sizeof buf, "E%d", err);
  return buf;
}

namespace {

Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code, int errnum,
                      const char* syscall, Napi::Value bytesValue) {
  AddonData* data = GetAddonData(env);
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    Napi::Object e = data->errorClass.New(
        {Napi::String::New(env, message), Napi::String::New(env, code),
         Napi::Number::New(env, errnum), Napi::String::New(env, syscall), bytesValue});
    return Napi::Error(env, e);
  }
  // The loader has not installed UffdError (a direct user of the binding): same fields.
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", code);
  e.Set("errno", Napi::Number::New(env, errnum));
  e.Set("syscall", syscall);
  e.Set("bytes", bytesValue);
  return e;
}

}  // namespace

Napi::Error UffdError(Napi::Env env, int err, const char* syscall, int64_t bytes,
                      const char* detail) {
  std::string message = std::string(ErrnoCode(err)) + ": " + syscall + " failed: " + strerror(err);
  if (bytes > 0) message += " after " + std::to_string(bytes) + " bytes";
  if (detail != nullptr) message += std::string(" (") + detail + ")";

  Napi::Value bytesValue =
      bytes == kNoBytes ? env.Undefined() : Napi::Number::New(env, static_cast<double>(bytes));
  return MakeError(env, message, ErrnoCode(err), err, syscall, bytesValue);
}

Napi::Error UffdErrorWithCode(Napi::Env env, const char* code, int errnum, const char* syscall,
                              const std::string& message) {
  return MakeError(env, message, code, errnum, syscall, env.Undefined());
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, int64_t bytes, const char* detail) {
  throw UffdError(env, err, syscall, bytes, detail);
}

void ThrowTypeError(Napi::Env env, const char* message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Set("code", "ERR_INVALID_ARG_TYPE");
  throw e;
}

void ThrowRangeError(Napi::Env env, const char* message) {
  Napi::RangeError e = Napi::RangeError::New(env, message);
  e.Set("code", "ERR_OUT_OF_RANGE");
  throw e;
}

}  // namespace uffd
