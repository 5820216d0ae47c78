// Reading numbers from JavaScript arguments. lib/ checks arguments first; these keep a direct
// caller of the binding from crashing the process with junk. JS thread only.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>

#include "uffd/errors.h"

namespace uffd {

// A bigint or a non-negative safe-integer number.
inline uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRangeError(info.Env(), "address out of range");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) {
      ThrowRangeError(info.Env(), "expected a non-negative integer");
    }
    return static_cast<uint64_t>(d);
  }
  ThrowTypeError(info.Env(), "expected a bigint or a number");
}

// An integer number in the int32 range: NaN or 1.5 would otherwise become fd 0 or 1.
inline int ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) ThrowTypeError(info.Env(), "expected a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || std::floor(d) != d) {
    ThrowRangeError(info.Env(), "expected an integer");
  }
  return static_cast<int>(d);
}

// The bytes of any TypedArray or DataView, over an ArrayBuffer or a SharedArrayBuffer (going
// through .ArrayBuffer() fails on a SharedArrayBuffer). Data is null when detached.
inline void ViewBytes(const Napi::Value& v, const uint8_t** data, size_t* length) {
  void* p = nullptr;
  size_t bytes = 0;
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    napi_typedarray_type type;
    size_t count;
    if (napi_get_typedarray_info(v.Env(), t, &type, &count, &p, nullptr, nullptr) == napi_ok) {
      bytes = t.ByteLength();
    }
  } else if (v.IsDataView()) {
    napi_get_dataview_info(v.Env(), v, &bytes, &p, nullptr, nullptr);
  }
  *data = static_cast<const uint8_t*>(p);
  *length = p == nullptr ? 0 : bytes;
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean(); }

}  // namespace uffd
