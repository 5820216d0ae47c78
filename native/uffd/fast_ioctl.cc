#include "uffd/fast_ioctl.h"

#include <time.h>

#include <functional>

#include "uffd/args.h"
#include "uffd/errors.h"
#include "uffd/uffd_ioctl.h"
#include "uffd/userfaultfd.h"

namespace uffd {

namespace {

// Errors are rare: they take the node-addon-api path (a C++ exception turned into a JS one).
napi_value Fail(napi_env env, const std::function<void()>& thrower) {
  try {
    thrower();
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  }
  return nullptr;
}

// The Userfaultfd behind `this`, and `argc` arguments; null (with a JS error) when `this` is not
// one or it is closed.
Userfaultfd* Self(napi_env env, napi_callback_info cbinfo, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_value self;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* wrapped = nullptr;
  if (napi_unwrap(env, self, &wrapped) != napi_ok || wrapped == nullptr) {
    Fail(env, [&] { ThrowTypeError(Napi::Env(env), "not a Userfaultfd"); });
    return nullptr;
  }
  auto* u = static_cast<Userfaultfd*>(static_cast<Napi::ObjectWrap<Userfaultfd>*>(wrapped));
  if (u->fd() < 0) {
    Fail(env, [&] { ThrowRangeError(Napi::Env(env), "the userfaultfd is closed"); });
    return nullptr;
  }
  return u;
}

// A bigint address (lib/ always passes one), or a checked number through ArgU64's rules.
bool Address(napi_env env, napi_value v, uint64_t* out) {
  bool lossless;
  if (napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless) return true;
  double d;
  if (napi_get_value_double(env, v, &d) == napi_ok && d >= 0 && d <= 9007199254740991.0 &&
      static_cast<double>(static_cast<uint64_t>(d)) == d) {
    *out = static_cast<uint64_t>(d);
    return true;
  }
  Fail(env,
       [&] { ThrowTypeError(Napi::Env(env), "expected a bigint or a non-negative safe integer"); });
  return false;
}

// this.copyFast(dst, src: Uint8Array, mode) -> bytes copied
napi_value CopyFast(napi_env env, napi_callback_info cbinfo) {
  napi_value argv[3];
  Userfaultfd* u = Self(env, cbinfo, 3, argv);
  if (u == nullptr) return nullptr;
  uint64_t dst;
  if (!Address(env, argv[0], &dst)) return nullptr;
  napi_typedarray_type type;
  size_t count;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return Fail(env, [&] { ThrowTypeError(Napi::Env(env), "src must be a Uint8Array"); });
  }
  if (data == nullptr || count == 0)
    return Fail(env, [&] { ThrowRangeError(Napi::Env(env), "src is empty or detached"); });
  uint32_t mode = 0;
  napi_get_value_uint32(env, argv[2], &mode);
  IoctlResult r = Copy(u->fd(), dst, data, count, mode);
  if (r.err != 0)
    return Fail(env, [&] { ThrowErrno(Napi::Env(env), r.err, "UFFDIO_COPY", r.bytes); });
  u->stats().CountResolve(static_cast<uint64_t>(r.bytes));
  napi_value result;
  napi_create_double(env, static_cast<double>(r.bytes), &result);
  return result;
}

// this.wakeFast(start, length)
napi_value WakeFast(napi_env env, napi_callback_info cbinfo) {
  napi_value argv[2];
  Userfaultfd* u = Self(env, cbinfo, 2, argv);
  if (u == nullptr) return nullptr;
  uint64_t start, length;
  if (!Address(env, argv[0], &start) || !Address(env, argv[1], &length)) return nullptr;
  int err = Wake(u->fd(), start, length);
  if (err != 0) return Fail(env, [&] { ThrowErrno(Napi::Env(env), err, "UFFDIO_WAKE"); });
  u->stats().CountWake();
  return nullptr;  // undefined
}

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace

void AddFastMethods(Napi::Env env, Napi::Function cls) {
  Napi::Object proto = cls.Get("prototype").As<Napi::Object>();
  napi_value fn;
  napi_create_function(env, "copyFast", NAPI_AUTO_LENGTH, CopyFast, nullptr, &fn);
  proto.Set("copyFast", Napi::Value(env, fn));
  napi_create_function(env, "wakeFast", NAPI_AUTO_LENGTH, WakeFast, nullptr, &fn);
  proto.Set("wakeFast", Napi::Value(env, fn));
}

Napi::Value BenchIoctlLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0), op = ArgInt(info, 1);
  uint64_t start = ArgU64(info, 2), count = ArgU64(info, 3);
  const uint8_t* src = nullptr;
  size_t len = 0;
  if (op == 0) {
    ViewBytes(info[4], &src, &len);
    if (src == nullptr || len < 4096) ThrowRangeError(env, "src must hold a page");
  }
  uint64_t t0 = NowNs();
  for (uint64_t i = 0; i < count; i++) {
    int err = op == 0 ? Copy(fd, start + i * 4096, src, 4096, UFFDIO_COPY_MODE_DONTWAKE).err
                      : Wake(fd, start + (i % 64) * 4096, 4096);
    if (err != 0) ThrowErrno(env, err, op == 0 ? "UFFDIO_COPY" : "UFFDIO_WAKE");
  }
  return Napi::Number::New(env, static_cast<double>(NowNs() - t0));
}

}  // namespace uffd
