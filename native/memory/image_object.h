// The SharedImage object JavaScript holds (lib/kernel/image-store.ts): it makes the memfd and
// the source, and owns one reference to the native image (sources/shared_image.h); every clone
// served from it holds another, so the memfd lives until the last of them lets go.
#pragma once
#include <napi.h>

#include <memory>

#include "sources/image_prefetcher.h"
#include "sources/shared_image.h"

namespace uffd {

class ImageObject : public Napi::ObjectWrap<ImageObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  // JS: new SharedImage(size, kind, source, offset, pread, maxBytes, record): kind as serve()'s
  // (SourceKind), -1 for a JavaScript source (filled through write()).
  explicit ImageObject(const Napi::CallbackInfo& info);
  ~ImageObject() override;

  // JS thread: the image behind a JS value, or null (not an image, or closed).
  static std::shared_ptr<SharedImage> From(Napi::Value value);

 private:
  Napi::Value ReadOnlyFd(const Napi::CallbackInfo& info);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Present(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Recorded(const Napi::CallbackInfo& info);
  Napi::Value Prefetch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  SharedImage& Live(Napi::Env env);  // throws once closed
  void Shutdown();                   // idempotent

  std::shared_ptr<SharedImage> image_;
  std::unique_ptr<ImagePrefetcher> prefetcher_;
  int readOnlyFd_ = -1;  // the memfd reopened read-only: what clones elsewhere receive
};

}  // namespace uffd
