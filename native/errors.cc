#include "errors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "addon.h"

namespace uffd {

const char* ErrnoCode(int err) {
  switch (err) {
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case ESRCH:
      return "ESRCH";
    case EINTR:
      return "EINTR";
    case EIO:
      return "EIO";
    case EBADF:
      return "EBADF";
    case EAGAIN:
      return "EAGAIN";
    case ENOMEM:
      return "ENOMEM";
    case EACCES:
      return "EACCES";
    case EFAULT:
      return "EFAULT";
    case EBUSY:
      return "EBUSY";
    case EEXIST:
      return "EEXIST";
    case ENODEV:
      return "ENODEV";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case EINVAL:
      return "EINVAL";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOTTY:
      return "ENOTTY";
    case EFBIG:
      return "EFBIG";
    case ENOSPC:
      return "ENOSPC";
    case ENOSYS:
      return "ENOSYS";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case ECONNRESET:
      return "ECONNRESET";
    case EPIPE:
      return "EPIPE";
    case ENOTSOCK:
      return "ENOTSOCK";
    case EADDRINUSE:
      return "EADDRINUSE";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case EMSGSIZE:
      return "EMSGSIZE";
    case EPROTO:
      return "EPROTO";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    case ESPIPE:
      return "ESPIPE";
    case ECANCELED:
      return "ECANCELED";
    default: {
      static thread_local char buf[16];
      snprintf(buf, sizeof buf, "E%d", err);
      return buf;
    }
  }
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
