#include "uffd/fast_ioctl.h"

#include <time.h>
#include <unistd.h>

#include <functional>

#include "uffd/args.h"
#include "uffd/errors.h"
#include "uffd/uffd_ioctl.h"

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

// The target this function was made for, and `argc` arguments; null (with a JS error) once its
// uffd is closed.
FastTarget* Target(napi_env env, napi_callback_info cbinfo, size_t want, napi_value* argv) {
  size_t argc = want;
  void* data = nullptr;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  FastTarget* t = static_cast<std::shared_ptr<FastTarget>*>(data)->get();
  if (t->fd < 0) {
    Fail(env, [&] { ThrowRangeError(Napi::Env(env), "the userfaultfd is closed"); });
    return nullptr;
  }
  return t;
}

// A length (lib/ always passes a number); `tryBigint`: a bigint is taken too.
bool Length(napi_env env, napi_value v, uint64_t* out, bool tryBigint = true) {
  double d;
  if (napi_get_value_double(env, v, &d) == napi_ok && d >= 0 && d <= 9007199254740991.0 &&
      static_cast<double>(static_cast<uint64_t>(d)) == d) {
    *out = static_cast<uint64_t>(d);
    return true;
  }
  bool lossless;
  if (tryBigint && napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless) {
    return true;
  }
  Fail(env,
       [&] { ThrowTypeError(Napi::Env(env), "expected a bigint or a non-negative safe integer"); });
  return false;
}

// A bigint address (lib/ always passes one), or a checked number through ArgU64's rules.
bool Address(napi_env env, napi_value v, uint64_t* out) {
  bool lossless;
  if (napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless) return true;
  return Length(env, v, out, false);
}

// copy(dst, src: Uint8Array, mode, existOk) -> bytes copied; kExisted for EEXIST with existOk
napi_value CopyFast(napi_env env, napi_callback_info cbinfo) {
  napi_value argv[4];
  FastTarget* u = Target(env, cbinfo, 4, argv);
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
  IoctlResult r = Copy(u->fd, dst, data, count, mode);
  napi_value result;
  if (r.err != 0) {
    bool existOk = false;
    if (r.err == EEXIST && r.bytes == 0 && napi_get_value_bool(env, argv[3], &existOk) == napi_ok &&
        existOk) {
      napi_create_double(env, kExisted, &result);
      return result;
    }
    return Fail(env, [&] { ThrowErrno(Napi::Env(env), r.err, "UFFDIO_COPY", r.bytes); });
  }
  u->stats->CountResolve(static_cast<uint64_t>(r.bytes));
  napi_create_double(env, static_cast<double>(r.bytes), &result);
  return result;
}

// wake(start, length)
napi_value WakeFast(napi_env env, napi_callback_info cbinfo) {
  napi_value argv[2];
  FastTarget* u = Target(env, cbinfo, 2, argv);
  if (u == nullptr) return nullptr;
  uint64_t start, length;
  if (!Address(env, argv[0], &start) || !Length(env, argv[1], &length)) return nullptr;
  int err = Wake(u->fd, start, length);
  if (err != 0) return Fail(env, [&] { ThrowErrno(Napi::Env(env), err, "UFFDIO_WAKE"); });
  u->stats->CountWake();
  return nullptr;  // undefined
}

// One function acting on `target`, which it keeps alive until it is collected. Throws (C++).
napi_value MakeFunction(napi_env env, const char* name, napi_callback cb,
                        const std::shared_ptr<FastTarget>& target) {
  auto* data = new std::shared_ptr<FastTarget>(target);
  napi_value fn = nullptr;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &fn) != napi_ok) {
    delete data;
    ThrowErrno(Napi::Env(env), ENOMEM, "napi_create_function");
  }
  // Should this fail, `data` is leaked rather than left dangling behind a function.
  if (napi_add_finalizer(
          env, fn, data,
          [](napi_env, void* d, void*) { delete static_cast<std::shared_ptr<FastTarget>*>(d); },
          nullptr, nullptr) != napi_ok) {
    ThrowErrno(Napi::Env(env), ENOMEM, "napi_add_finalizer");
  }
  return fn;
}

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace

Napi::Value MakeFastMethods(Napi::Env env, const std::shared_ptr<FastTarget>& target) {
  napi_value copy = MakeFunction(env, "copy", CopyFast, target);
  napi_value wake = MakeFunction(env, "wake", WakeFast, target);
  Napi::Object methods = Napi::Object::New(env);
  methods.Set("copy", Napi::Value(env, copy));
  methods.Set("wake", Napi::Value(env, wake));
  return methods;
}

Napi::Value BenchIoctlLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0), op = ArgInt(info, 1);
  uint64_t start = ArgU64(info, 2), count = ArgU64(info, 3);
  // The base page of this kernel (4, 16 or 64 KiB on arm64), as the JS side's uffd.pageSize.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint8_t* src = nullptr;
  size_t len = 0;
  if (op == 0 || op == 2) {
    ViewBytes(info[4], &src, &len);
    if (src == nullptr || len < page) ThrowRangeError(env, "src must hold a page");
  }
  uint64_t t0 = NowNs();
  for (uint64_t i = 0; i < count; i++) {
    int err = 0;
    const char* what = "UFFDIO_COPY";
    if (op == 0) {
      err = Copy(fd, start + i * page, src, page, UFFDIO_COPY_MODE_DONTWAKE).err;
    } else if (op == 1) {
      err = Wake(fd, start + (i % 64) * page, page);
      what = "UFFDIO_WAKE";
    } else {
      // What a handler does when another thread's fault on the page was answered first.
      uint64_t at = start + (i % 64) * page;
      err = Copy(fd, at, src, page, 0).err;
      if (err == EEXIST)
        err = Wake(fd, at, page);
      else if (err == 0)
        err = EINVAL;  // the page was absent: not the case measured
    }
    if (err != 0) ThrowErrno(env, err, what);
  }
  return Napi::Number::New(env, static_cast<double>(NowNs() - t0));
}

}  // namespace uffd
