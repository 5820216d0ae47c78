#include "memory/image_object.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "sources/source_args.h"
#include "uffd/args.h"
#include "uffd/errors.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

namespace uffd {

namespace {

const napi_type_tag kImageTag = {0x7566666473686172ull, 0x6564696d61676521ull};

// JS thread. A memfd of `size` bytes, sealed against growing and shrinking: a clone elsewhere
// holds the same file, and a shrunk memfd would raise SIGBUS in every clone. Non-executable
// (MFD_NOEXEC_SEAL) where the kernel knows it: vm.memfd_noexec = 2 refuses any other memfd.
int MakeMemfd(Napi::Env env, uint64_t size) {
  int fd = memfd_create("userfaultfd-image", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  if (fd < 0 && errno == EINVAL)
    fd = memfd_create("userfaultfd-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create", kNoBytes, "the shared image's memory");
  const char* failed = nullptr;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0)
    failed = "ftruncate";
  else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    failed = "fcntl";
  if (failed != nullptr) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, failed, kNoBytes,
               *failed == 'f' && failed[1] == 'c' ? "F_ADD_SEALS on the shared image's memfd"
                                                  : "the shared image's memfd");
  }
  return fd;
}

}  // namespace

Napi::Function ImageObject::Init(Napi::Env env) {
  return DefineClass(env, "SharedImage",
                     {
                         InstanceMethod<&ImageObject::ReadOnlyFd>("readOnlyFd"),
                         InstanceMethod<&ImageObject::Fd>("fd"),
                         InstanceMethod<&ImageObject::Write>("write"),
                         InstanceMethod<&ImageObject::Present>("present"),
                         InstanceMethod<&ImageObject::Stats>("stats"),
                         InstanceMethod<&ImageObject::Recorded>("recorded"),
                         InstanceMethod<&ImageObject::Prefetch>("prefetch"),
                         InstanceMethod<&ImageObject::Close>("close"),
                     });
}

ImageObject::ImageObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageObject>(info) {
  Napi::Env env = info.Env();
  uint64_t size = ArgU64(info, 0);
  int kind = ArgInt(info, 1);
  uint64_t offset = ArgU64(info, 3), maxBytes = ArgU64(info, 5);
  FileMode mode = ArgBool(info, 4) ? FileMode::kPread : FileMode::kMapped;
  bool record = ArgBool(info, 6);
  uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (size == 0 || size % page != 0) ThrowRangeError(env, "size must be a positive page multiple");
  std::shared_ptr<PageSource> source;
  switch (kind) {
    case -1:
      break;  // JavaScript's: filled through write()
    case static_cast<int>(SourceKind::kZero):
      source = MakeZeroSource();
      break;
    case static_cast<int>(SourceKind::kBuffer): {
      if (!info[2].IsTypedArray()) ThrowTypeError(env, "buffer source must be a Uint8Array");
      const uint8_t* data;
      size_t bytes;
      ViewBytes(info[2], &data, &bytes);
      uint64_t skip = std::min<uint64_t>(offset, bytes);
      // A copy: the image may outlive the buffer (a clone in another process, a Worker's).
      source = MakeCopiedMemorySource(data == nullptr ? nullptr : data + skip, bytes - skip);
      if (!source) ThrowErrno(env, errno, "mmap", kNoBytes, "a copy of the buffer source");
      break;
    }
    case static_cast<int>(SourceKind::kFd):
    case static_cast<int>(SourceKind::kPath):
      source = FileSourceFromJs(env, static_cast<SourceKind>(kind), info[2], offset, mode, nullptr);
      break;
    default:
      ThrowRangeError(env, "unknown page source kind");
  }
  int fd = MakeMemfd(env, size);
  // Clones elsewhere get a read-only file: they can map it privately, never write or resize it.
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  readOnlyFd_ = open(path, O_RDONLY | O_CLOEXEC);
  image_ = std::make_shared<SharedImage>(fd, size, page, std::move(source), maxBytes, record);
  napi_type_tag_object(env, info.This(), &kImageTag);
}

ImageObject::~ImageObject() { Shutdown(); }

void ImageObject::Shutdown() {
  if (prefetcher_) prefetcher_->Stop();
  prefetcher_.reset();
  image_.reset();
  if (readOnlyFd_ >= 0) close(readOnlyFd_);
  readOnlyFd_ = -1;
}

std::shared_ptr<SharedImage> ImageObject::From(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(value.Env(), value, &kImageTag, &tagged) != napi_ok || !tagged)
    return nullptr;
  return Unwrap(value.As<Napi::Object>())->image_;
}

SharedImage& ImageObject::Live(Napi::Env env) {
  if (!image_) ThrowRangeError(env, "The shared image is closed");
  return *image_;
}

// () -> the read-only fd (owned by this object), or -1 when /proc could not reopen it.
Napi::Value ImageObject::ReadOnlyFd(const Napi::CallbackInfo& info) {
  Live(info.Env());
  return Napi::Number::New(info.Env(), readOnlyFd_);
}

// () -> the memfd (owned by the image), for clones of this process.
Napi::Value ImageObject::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Live(info.Env()).fd());
}

// (offset, bytes: Uint8Array) -> undefined. A JavaScript source's read.
Napi::Value ImageObject::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedImage& image = Live(env);
  uint64_t offset = ArgU64(info, 0);
  if (!info[1].IsTypedArray()) ThrowTypeError(env, "bytes must be a Uint8Array");
  const uint8_t* data;
  size_t bytes;
  ViewBytes(info[1], &data, &bytes);
  if (bytes == 0) return env.Undefined();
  int err = image.Write(offset, data, bytes);
  if (err != 0) ThrowErrno(env, err, "pwrite", kNoBytes, "the shared image's memfd");
  return env.Undefined();
}

// (offset) -> whether the page is in the memfd.
Napi::Value ImageObject::Present(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Live(info.Env()).Present(ArgU64(info, 0)));
}

Napi::Value ImageObject::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedImage::Counters& c = Live(env).counters();
  Napi::Object r = Napi::Object::New(env);
  auto set = [&](const char* key, const std::atomic<uint64_t>& v) {
    r.Set(key, Napi::Number::New(env, static_cast<double>(v.load(std::memory_order_relaxed))));
  };
  set("sourceReads", c.sourceReads);
  set("sourceBytes", c.sourceBytes);
  set("filledPages", c.filledPages);
  set("evictedPages", c.evictedPages);
  set("demandFills", c.demandFills);
  set("sharedFaults", c.sharedFaults);
  set("prefetched", c.prefetched);
  r.Set("prefetchCursor",
        Napi::Number::New(env, prefetcher_ ? static_cast<double>(prefetcher_->cursor()) : -1));
  r.Set("prefetchDone", Napi::Boolean::New(env, !prefetcher_ || prefetcher_->finished()));
  r.Set("prefetchError", Napi::Number::New(env, prefetcher_ ? prefetcher_->error() : 0));
  return r;
}

// () -> Uint32Array of [firstPage, pageCount, write] triples: first fills, in order.
Napi::Value ImageObject::Recorded(const Napi::CallbackInfo& info) {
  return RunsToJs(info.Env(), Live(info.Env()).Recorded());
}

// (runs: Uint32Array of [firstPage, pageCount] pairs) -> undefined: starts the prefetch thread.
Napi::Value ImageObject::Prefetch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedImage& image = Live(env);
  if (prefetcher_) ThrowRangeError(env, "the image prefetches already");
  if (!info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowTypeError(env, "runs must be a Uint32Array");
  Napi::Uint32Array a = info[0].As<Napi::Uint32Array>();
  uint64_t pages = image.size() / image.pageSize();
  std::vector<PageRun> runs;
  runs.reserve(a.ElementLength() / 2);
  for (size_t i = 0; i + 1 < a.ElementLength(); i += 2) {
    uint64_t first = a[i], count = a[i + 1];
    if (count == 0 || first >= pages || count > pages - first)
      ThrowRangeError(env, "prefetch run outside the image");
    runs.push_back(PageRun{a[i], a[i + 1], 0});
  }
  auto p = std::make_unique<ImagePrefetcher>(image_, std::move(runs));
  int err = p->Start();
  if (err != 0) ThrowErrno(env, err, "pthread_create");
  prefetcher_ = std::move(p);
  return env.Undefined();
}

Napi::Value ImageObject::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace uffd
