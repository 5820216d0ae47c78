// Module init: the native classes, the constants table and the probe helpers.
#include "addon.h"

#include <dlfcn.h>
#include <napi.h>
#include <unistd.h>

#include <cstddef>
#include <mutex>

#include "fdpass/fdpass.h"
#include "fdpass/image_client.h"
#include "memory/image_object.h"
#include "memory/region.h"
#include "reader/fault_reader.h"
#include "reader/fork_guard.h"
#include "reader/teardown_registry.h"
#include "tracking/dirty_tracker.h"
#include "uffd/errors.h"
#include "uffd/fast_ioctl.h"
#include "uffd/kernel_abi.h"
#include "uffd/userfaultfd.h"

namespace uffd {

AddonData::~AddonData() {
  for (int fd : handedFds) close(fd);
}

void HandOverFd(Napi::Env env, int fd) {
  AddonData* data = GetAddonData(env);
  if (data != nullptr) data->handedFds.push_back(fd);
}

void TakeOverFd(Napi::Env env, int fd) {
  AddonData* data = GetAddonData(env);
  if (data == nullptr) return;
  auto& fds = data->handedFds;
  for (size_t i = 0; i < fds.size(); i++) {
    if (fds[i] == fd) {
      fds.erase(fds.begin() + static_cast<long>(i));
      return;
    }
  }
}
namespace {

// The kernel ABI as this build knows it; lib/base/constants.ts and the simulator share this table.
Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](Napi::Object o, const char* name, double v) {
    o.Set(name, Napi::Number::New(env, v));
  };

  Napi::Object features = Napi::Object::New(env);
  set(features, "PAGEFAULT_FLAG_WP", UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  set(features, "EVENT_FORK", UFFD_FEATURE_EVENT_FORK);
  set(features, "EVENT_REMAP", UFFD_FEATURE_EVENT_REMAP);
  set(features, "EVENT_REMOVE", UFFD_FEATURE_EVENT_REMOVE);
  set(features, "MISSING_HUGETLBFS", UFFD_FEATURE_MISSING_HUGETLBFS);
  set(features, "MISSING_SHMEM", UFFD_FEATURE_MISSING_SHMEM);
  set(features, "EVENT_UNMAP", UFFD_FEATURE_EVENT_UNMAP);
  set(features, "SIGBUS", UFFD_FEATURE_SIGBUS);
  set(features, "THREAD_ID", UFFD_FEATURE_THREAD_ID);
  set(features, "MINOR_HUGETLBFS", UFFD_FEATURE_MINOR_HUGETLBFS);
  set(features, "MINOR_SHMEM", UFFD_FEATURE_MINOR_SHMEM);
  set(features, "EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS);
  set(features, "WP_HUGETLBFS_SHMEM", UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
  set(features, "WP_UNPOPULATED", UFFD_FEATURE_WP_UNPOPULATED);
  set(features, "POISON", UFFD_FEATURE_POISON);
  set(features, "WP_ASYNC", UFFD_FEATURE_WP_ASYNC);
  set(features, "MOVE", UFFD_FEATURE_MOVE);
  c.Set("features", features);

  Napi::Object ioctls = Napi::Object::New(env);  // bit numbers in the ioctls masks
  set(ioctls, "register", _UFFDIO_REGISTER);
  set(ioctls, "unregister", _UFFDIO_UNREGISTER);
  set(ioctls, "wake", _UFFDIO_WAKE);
  set(ioctls, "copy", _UFFDIO_COPY);
  set(ioctls, "zeropage", _UFFDIO_ZEROPAGE);
  set(ioctls, "move", _UFFDIO_MOVE);
  set(ioctls, "writeProtect", _UFFDIO_WRITEPROTECT);
  set(ioctls, "continue", _UFFDIO_CONTINUE);
  set(ioctls, "poison", _UFFDIO_POISON);
  set(ioctls, "api", _UFFDIO_API);
  c.Set("ioctls", ioctls);

  Napi::Object modes = Napi::Object::New(env);
  set(modes, "REGISTER_MISSING", static_cast<double>(UFFDIO_REGISTER_MODE_MISSING));
  set(modes, "REGISTER_WP", static_cast<double>(UFFDIO_REGISTER_MODE_WP));
  set(modes, "REGISTER_MINOR", static_cast<double>(UFFDIO_REGISTER_MODE_MINOR));
  set(modes, "COPY_DONTWAKE", static_cast<double>(UFFDIO_COPY_MODE_DONTWAKE));
  set(modes, "COPY_WP", static_cast<double>(UFFDIO_COPY_MODE_WP));
  set(modes, "ZEROPAGE_DONTWAKE", static_cast<double>(UFFDIO_ZEROPAGE_MODE_DONTWAKE));
  set(modes, "WRITEPROTECT_WP", static_cast<double>(UFFDIO_WRITEPROTECT_MODE_WP));
  set(modes, "WRITEPROTECT_DONTWAKE", static_cast<double>(UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
  set(modes, "CONTINUE_DONTWAKE", static_cast<double>(UFFDIO_CONTINUE_MODE_DONTWAKE));
  set(modes, "CONTINUE_WP", static_cast<double>(UFFDIO_CONTINUE_MODE_WP));
  set(modes, "POISON_DONTWAKE", static_cast<double>(kPoisonModeDontwake));
  set(modes, "MOVE_DONTWAKE", static_cast<double>(kMoveModeDontwake));
  set(modes, "MOVE_ALLOW_SRC_HOLES", static_cast<double>(kMoveModeAllowSrcHoles));
  c.Set("modes", modes);

  Napi::Object events = Napi::Object::New(env);
  set(events, "PAGEFAULT", UFFD_EVENT_PAGEFAULT);
  set(events, "FORK", UFFD_EVENT_FORK);
  set(events, "REMAP", UFFD_EVENT_REMAP);
  set(events, "REMOVE", UFFD_EVENT_REMOVE);
  set(events, "UNMAP", UFFD_EVENT_UNMAP);
  c.Set("events", events);

  Napi::Object flags = Napi::Object::New(env);
  set(flags, "WRITE", UFFD_PAGEFAULT_FLAG_WRITE);
  set(flags, "WP", UFFD_PAGEFAULT_FLAG_WP);
  set(flags, "MINOR", UFFD_PAGEFAULT_FLAG_MINOR);
  c.Set("pagefaultFlags", flags);

  // The record the reader hands JS (native/reader/fault_reader.h Delivery) and the codes in it: the
  // one definition lib/kernel reads them from.
  Napi::Object delivery = Napi::Object::New(env);
  set(delivery, "size", static_cast<double>(sizeof(Delivery)));
  set(delivery, "msg", static_cast<double>(offsetof(Delivery, msg)));
  set(delivery, "note", static_cast<double>(offsetof(Delivery, note)));
  set(delivery, "err", static_cast<double>(offsetof(Delivery, err)));
  c.Set("delivery", delivery);

  Napi::Object notes = Napi::Object::New(env);
  set(notes, "kernel", kNoteKernel);
  set(notes, "selfFault", kNoteSelfFaultAnswered);
  set(notes, "sourceFailed", kNoteSourceFailed);
  set(notes, "readerFailed", kNoteReaderFailed);
  set(notes, "sourceFailedAnswered", kNoteSourceFailedAnswered);
  set(notes, "selfFaultFallback", kNoteSelfFaultFallback);
  set(notes, "yielded", kNoteYielded);
  set(notes, "filled", kNoteFilled);
  c.Set("notes", notes);

  Napi::Object kinds = Napi::Object::New(env);
  set(kinds, "zero", static_cast<double>(SourceKind::kZero));
  set(kinds, "buffer", static_cast<double>(SourceKind::kBuffer));
  set(kinds, "fd", static_cast<double>(SourceKind::kFd));
  set(kinds, "path", static_cast<double>(SourceKind::kPath));
  c.Set("sourceKinds", kinds);

  Napi::Object policies = Napi::Object::New(env);
  set(policies, "zeropage", static_cast<double>(SelfFaultPolicy::kZeropage));
  set(policies, "sigbus", static_cast<double>(SelfFaultPolicy::kSigbus));
  set(policies, "source", static_cast<double>(SelfFaultPolicy::kSource));
  c.Set("selfFaultPolicies", policies);

  Napi::Object errnos = Napi::Object::New(env);
  for (size_t i = 0; i < kErrnoNameCount; i++)
    set(errnos, kErrnoNames[i].name, kErrnoNames[i].value);
  c.Set("errno", errnos);

  set(c, "API", static_cast<double>(UFFD_API));
  set(c, "USER_MODE_ONLY", UFFD_USER_MODE_ONLY);
  set(c, "pageSize", static_cast<double>(sysconf(_SC_PAGESIZE)));
  return c;
}

}  // namespace

namespace {
// JS thread, before each poll of the loop while accesses are in flight.
void OnPrepare(uv_prepare_t* handle) {
  auto* data = static_cast<AddonData*>(handle->data);
  napi_env env = data->canary.Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value undefined, canary;
  napi_get_undefined(env, &undefined);
  bool alive = napi_get_reference_value(env, data->canary, &canary) == napi_ok &&
               napi_set_named_property(env, canary, "alive", undefined) == napi_ok;
  napi_close_handle_scope(env, scope);
  if (alive) return;
  // The environment is being torn down (a terminated Worker, an exiting thread).
  std::vector<Userfaultfd*> open = data->uffds;
  for (Userfaultfd* u : open) u->Shutdown();
  uv_prepare_stop(handle);
}

void OnPrepareCleanup(napi_async_cleanup_hook_handle, void* arg) {
  auto* data = static_cast<AddonData*>(arg);
  uv_close(reinterpret_cast<uv_handle_t*>(data->prepare), [](uv_handle_t* h) {
    auto* d = static_cast<AddonData*>(h->data);
    napi_async_cleanup_hook_handle hook = d->prepareCleanup;
    d->prepareCleanup = nullptr;
    delete reinterpret_cast<uv_prepare_t*>(h);
    d->prepare = nullptr;
    napi_remove_async_cleanup_hook(hook);
  });
}

}  // namespace

void TrackUffd(Napi::Env env, Userfaultfd* u) { GetAddonData(env)->uffds.push_back(u); }

void UntrackUffd(Napi::Env env, Userfaultfd* u) {
  std::vector<Userfaultfd*>& v = GetAddonData(env)->uffds;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == u) {
      v.erase(v.begin() + static_cast<long>(i));
      return;
    }
  }
}

void BeginEnvAccess(Napi::Env env) {
  AddonData* data = GetAddonData(env);
  if (data->prepare == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
    auto* p = new uv_prepare_t;
    uv_prepare_init(loop, p);
    p->data = data;
    uv_unref(reinterpret_cast<uv_handle_t*>(p));
    data->prepare = p;
    data->canary = Napi::Persistent(Napi::Object::New(env));
    napi_add_async_cleanup_hook(env, OnPrepareCleanup, data, &data->prepareCleanup);
  }
  if (data->accesses++ == 0) uv_prepare_start(data->prepare, OnPrepare);
}

void EndEnvAccess(Napi::Env env) {
  AddonData* data = GetAddonData(env);
  if (data->prepare == nullptr || data->accesses == 0) return;
  if (--data->accesses == 0) uv_prepare_stop(data->prepare);
}

namespace {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setErrorClass(UffdError)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  GetAddonData(info.Env())->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// Keeps this shared object mapped until the process ends. Node unloads an addon when the last
// environment that loaded it goes (a Worker that was the only user); but the SIGBUS handler the
// guard installed (region.cc) stays installed process-wide, and a SIGBUS after that jumped into
// unmapped memory: a SIGSEGV (test/reliability/worker-teardown.test.js).
void PinAddon() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&PinAddon), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinAddon();
  InstallForkGuard();
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function uffdClass = Userfaultfd::Init(env);
  Napi::Function regionClass = Region::Init(env);
  data->userfaultfdClass = Napi::Persistent(uffdClass);
  data->regionClass = Napi::Persistent(regionClass);

  exports.Set("supported", Napi::Boolean::New(env, true));
  exports.Set("Userfaultfd", uffdClass);
  exports.Set("Region", regionClass);
  exports.Set("SharedImage", ImageObject::Init(env));
  exports.Set("constants", Constants(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("openSyscall", Napi::Function::New(env, OpenSyscall, "openSyscall"));
  exports.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
  exports.Set("apiHandshake", Napi::Function::New(env, ApiHandshake, "apiHandshake"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("gettid", Napi::Function::New(env, GetTid, "gettid"));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow, "exitNow"));
  exports.Set("benchIoctlLoop", Napi::Function::New(env, BenchIoctlLoop, "benchIoctlLoop"));
  InitFdPass(env, exports);
  InitImageClient(env, exports);
  InitDirtyTracker(env, exports);
  InitTeardown(env, exports);
  return exports;
}

}  // namespace
}  // namespace uffd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return uffd::Init(env, exports);
}

NODE_API_MODULE(userfaultfd, InitModule)
