#include "uffd/userfaultfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "addon.h"
#include "memory/image_object.h"
#include "memory/region.h"
#include "reader/fork_guard.h"
#include "reader/local_uffds.h"
#include "reader/reader_claims.h"
#include "reader/sync_reader.h"
#include "reader/teardown_registry.h"
#include "sources/source_args.h"
#include "sources/sparse_source.h"
#include "uffd/args.h"
#include "uffd/errors.h"
#include "uffd/uffd_ioctl.h"

namespace uffd {

namespace {

int OpenFlags(bool userModeOnly) {
  return O_CLOEXEC | O_NONBLOCK | (userModeOnly ? UFFD_USER_MODE_ONLY : 0);
}

Napi::BigInt U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// The range arguments (start, length) of the range ioctls.
struct RangeArgs {
  uint64_t start, length, mode;
};
RangeArgs ReadRange(const Napi::CallbackInfo& info) {
  return {ArgU64(info, 0), ArgU64(info, 1), info.Length() > 2 ? ArgU64(info, 2) : 0};
}

// (…, existOk at `index`): EEXIST with nothing done returns kExisted instead of throwing.
bool Existed(const Napi::CallbackInfo& info, size_t index, const IoctlResult& r) {
  return r.err == EEXIST && r.bytes == 0 && info.Length() > index && info[index].ToBoolean();
}

// Whether a view's memory belongs to an ArrayBuffer (detachable), not a SharedArrayBuffer.
bool Detachable(Napi::Value view) {
  napi_value buffer = nullptr;
  napi_status st =
      napi_get_typedarray_info(view.Env(), view, nullptr, nullptr, nullptr, &buffer, nullptr);
  bool isArrayBuffer = false;
  return st != napi_ok || napi_is_arraybuffer(view.Env(), buffer, &isArrayBuffer) != napi_ok ||
         isArrayBuffer;
}

}  // namespace

Napi::Value OpenSyscall(const Napi::CallbackInfo& info) {
#ifdef __NR_userfaultfd
  int fd = static_cast<int>(syscall(__NR_userfaultfd, OpenFlags(ArgBool(info, 0))));
  if (fd < 0) ThrowErrno(info.Env(), errno, "userfaultfd");
  return Napi::Number::New(info.Env(), fd);
#else
  ThrowErrno(info.Env(), ENOSYS, "userfaultfd");
#endif
}

Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) ThrowErrno(info.Env(), errno, "open", kNoBytes, "/dev/userfaultfd");
  int fd = ioctl(dev, USERFAULTFD_IOC_NEW, OpenFlags(ArgBool(info, 0)));
  int err = errno;
  close(dev);
  if (fd < 0) ThrowErrno(info.Env(), err, "USERFAULTFD_IOC_NEW");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ApiHandshake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uffdio_api api{UFFD_API, ArgU64(info, 1), 0};
  int err = RetryIoctl(ArgInt(info, 0), UFFDIO_API, &api);
  if (err != 0) ThrowErrno(env, err, "UFFDIO_API");
  Napi::Object r = Napi::Object::New(env);
  r.Set("api", Napi::Number::New(env, static_cast<double>(api.api)));
  r.Set("features", Napi::Number::New(env, static_cast<double>(api.features)));
  r.Set("ioctls", U64(env, api.ioctls));
  return r;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  TakeOverFd(info.Env(), ArgInt(info, 0));
  if (close(ArgInt(info, 0)) != 0) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(gettid()));
}

// No atexit handlers, no static destructors, no join of any thread: the kernel closes the fds
// and ends the threads (criu-lazy-pages' exit once every page is in: docs/criu.md).
Napi::Value ExitNow(const Napi::CallbackInfo& info) { _exit(ArgInt(info, 0)); }

Napi::Function Userfaultfd::Init(Napi::Env env) {
  return DefineClass(env, "Userfaultfd",
                     {
                         InstanceAccessor<&Userfaultfd::Fd>("fd"),
                         InstanceMethod<&Userfaultfd::Register>("register"),
                         InstanceMethod<&Userfaultfd::Unregister>("unregister"),
                         InstanceMethod<&Userfaultfd::CopyFromBuffer>("copy"),
                         InstanceMethod<&Userfaultfd::CopyFromAddress>("copyFromAddress"),
                         InstanceMethod<&Userfaultfd::Zeropage>("zeropage"),
                         InstanceMethod<&Userfaultfd::Wake>("wake"),
                         InstanceMethod<&Userfaultfd::WriteProtect>("writeProtect"),
                         InstanceMethod<&Userfaultfd::Continue>("continue"),
                         InstanceMethod<&Userfaultfd::Poison>("poison"),
                         InstanceMethod<&Userfaultfd::Move>("move"),
                         InstanceMethod<&Userfaultfd::Close>("close"),
                         InstanceMethod<&Userfaultfd::Noop>("noop"),
                         InstanceMethod<&Userfaultfd::FastMethods>("fastMethods"),
                         InstanceMethod<&Userfaultfd::StartReader>("startReader"),
                         InstanceMethod<&Userfaultfd::RefReader>("ref"),
                         InstanceMethod<&Userfaultfd::UnrefReader>("unref"),
                         InstanceMethod<&Userfaultfd::SetSelfFaultPolicy>("setSelfFaultPolicy"),
                         InstanceMethod<&Userfaultfd::ClaimReadsMethod>("claimReads"),
                         InstanceMethod<&Userfaultfd::SetJsReads>("setJsReads"),
                         InstanceMethod<&Userfaultfd::Serve>("serve"),
                         InstanceMethod<&Userfaultfd::ServeImage>("serveImage"),
                         InstanceMethod<&Userfaultfd::Unserve>("unserve"),
                         InstanceMethod<&Userfaultfd::StartFill>("startFill"),
                         InstanceMethod<&Userfaultfd::AnswerServed>("answerServed"),
                         InstanceMethod<&Userfaultfd::SetOrdered>("setOrdered"),
                         InstanceMethod<&Userfaultfd::AdoptFork>("adoptFork"),
                         InstanceMethod<&Userfaultfd::DropFork>("dropFork"),
                         InstanceMethod<&Userfaultfd::Stats>("stats"),
                         InstanceMethod<&Userfaultfd::ReadSync>("readSync"),
                         InstanceMethod<&Userfaultfd::Recorded>("recorded"),
                         InstanceMethod<&Userfaultfd::Installed>("installed"),
                         InstanceMethod<&Userfaultfd::Snapshot>("snapshot"),
                         InstanceMethod<&Userfaultfd::SnapshotEnd>("snapshotEnd"),
                     });
}

Userfaultfd::Userfaultfd(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Userfaultfd>(info),
      pageSize_(static_cast<uint64_t>(sysconf(_SC_PAGESIZE))),
      served_(pageSize_) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  if (fd < 0) ThrowRangeError(env, "fd must be >= 0");
  // The object closes its fd when it goes: adopt nothing but a userfaultfd.
  // (Without /proc, only openness can be checked.)
  if (fcntl(fd, F_GETFD) < 0) ThrowRangeError(env, "fd is not open");
  char path[32], link[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n >= 0) {
    link[n] = '\0';
    if (strcmp(link, "anon_inode:[userfaultfd]") != 0)
      ThrowTypeError(env, "fd is not a userfaultfd");
  }
  features_ = ArgU64(info, 1);
  // (fd, features, opened): true when this process opened the uffd for its own memory.
  bool opened = info.Length() > 2 && ArgBool(info, 2);
  // (…, dup): adopt a duplicate, made here, after every check that can throw: made in JS, a
  // Worker terminated between the dup and this object would leak it (no JS runs to close it).
  if (info.Length() > 3 && ArgBool(info, 3)) {
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) ThrowErrno(env, errno, "dup");
  } else {
    TakeOverFd(env, fd);  // a fork event's fd, wrapped: this object closes it from now on
  }
  inode_ = UffdInode(fd);
  localClaim_ = ClaimLocalUffd(inode_, opened);
  localMemory_ = localClaim_ != 0 || opened;
  served_.SetLocalMemory(localMemory_);
  fd_ = fd;
  fast_ = std::make_shared<FastTarget>(FastTarget{fd, &stats_});
  env_ = env;
  hookInstalled_ = napi_add_env_cleanup_hook(env, OnEnvCleanup, this) == napi_ok;
  TrackUffd(env, this);
  tracked_ = true;
  TrackForTeardown(env, this, fd);
}

Userfaultfd::~Userfaultfd() {
  // The hook must go with the object it points to, or it runs on freed memory at exit.
  if (hookInstalled_) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  Shutdown();
}

void Userfaultfd::OnEnvCleanup(void* arg) {
  auto* self = static_cast<Userfaultfd*>(arg);
  self->hookInstalled_ = false;  // node removes a hook once it has run
  self->Shutdown();
}

// The order is what keeps a fork in another thread from hanging: while this uffd is open and
// registered, a thread that forks waits in the kernel for its FORK event to be read, holding
// malloc's locks meanwhile. So everything that may wait on malloc (directly, or on a lock whose
// holder may) happens while the reader still reads; between the reader's join and the close of
// the fd, nothing does (the reader's own exit is malloc-free: wakeable_thread.h).
void Userfaultfd::Shutdown() {
  // A reader elsewhere that stepped aside for this one resumes before this one stops. The claim
  // goes before consumer_ does: this object's own reader, which reads both, must never see
  // "no consumer here, a claim" and step aside itself (ReleaseReads may wait on a thread that
  // waits on a fork, and the fork on this reader).
  if (consumer_.load(std::memory_order_relaxed)) {
    ReleaseReads(inode_);
    consumer_.store(false, std::memory_order_release);
  }
  if (tracked_) {
    tracked_ = false;
    UntrackUffd(Napi::Env(env_), this);
  }
  workingSets_.Clear();  // joins the prefetch threads: they use the fd and the sources
  std::vector<std::shared_ptr<SnapshotWriter>> snapshots;
  {
    std::lock_guard<std::mutex> lock(snapshotsMutex_);
    snapshots.swap(snapshots_);
  }
  for (auto& s : snapshots) s->Cancel();  // no ioctl on fd_ from them once it is closed below
  if (fast_) *fast_ = FastTarget{};       // its functions throw from now on
  if (fd_ >= 0) DetachForTeardown(this);  // nobody unregisters through fd_ from here on
  {
    // No fork in flight from here to the close (fork_guard.h): the reader reads the FORK events
    // of those that were, until they are done.
    ForkExclusion noFork;
    // Stopping the reader before closing: a poll never wakes on close(2) of its fd. Halt, not
    // join: joining frees the thread's TLS (free()).
    if (reader_ != nullptr) reader_->Halt();
    if (fd_ >= 0) {
      close(fd_);  // wakes every faulting thread: they retry as ordinary faults
      fd_ = -1;
    }
  }
  if (reader_ != nullptr) {
    UnwatchReadClaims(inode_, this);
    reader_->Release();  // deleted later, by its queue
    reader_ = nullptr;
    claims_ = nullptr;  // the thread that read it is joined
  }
  served_.Clear();  // the reader and the prefetch threads that used the sources are joined
  servedCount_ = 0;
  {
    ForkList forks;  // released after the unlock
    std::lock_guard<std::mutex> lock(forksMutex_);
    forks_.swap(forks);
  }
  sharedSources_.clear();
  ForgetForTeardown(this);
  // After the close: a source's Region whose unmap() waited for it is unmapped here, and were
  // it registered on this uffd with EVENT_UNMAP, munmap(2) would wait for a reader to read the
  // UNMAP event, and the reader is gone.
  for (KeepAlive& k : keepAlive_) ReleaseKeepAlive(k);
  keepAlive_.clear();
  ReleaseLocalUffd(localClaim_);
  localClaim_ = 0;
  for (auto& s : snapshots) s->Join();  // a read it waited on was released by the close
}

int Userfaultfd::CheckedFd(Napi::Env env, const char* syscall) {
  if (fd_ < 0) ThrowRangeError(env, "The userfaultfd is closed");
  return fd_;
}

Napi::Value Userfaultfd::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_);
}

// (start, length, mode) -> ioctls bigint
Napi::Value Userfaultfd::Register(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_REGISTER");
  RangeArgs a = ReadRange(info);
  uffdio_register reg{{a.start, a.length}, a.mode, 0};
  int err = RetryIoctl(fd, UFFDIO_REGISTER, &reg);
  if (err != 0) ThrowErrno(env, err, "UFFDIO_REGISTER");
  NoteRegistered(this, a.start, a.length);
  return U64(env, reg.ioctls);
}

Napi::Value Userfaultfd::Unregister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_UNREGISTER");
  RangeArgs a = ReadRange(info);
  uffdio_range range{a.start, a.length};
  int err = RetryIoctl(fd, UFFDIO_UNREGISTER, &range);
  if (err != 0) ThrowErrno(env, err, "UFFDIO_UNREGISTER");
  NoteUnregistered(this, a.start, a.length);
  return env.Undefined();
}

// (dst, src: TypedArray | DataView | ArrayBuffer, mode, seen?, existOk?) -> bytes copied, or
// kExisted (existOk). seen: see SetOrdered.
Napi::Value Userfaultfd::CopyFromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_COPY");
  uint64_t dst = ArgU64(info, 0);
  const uint8_t* src;
  size_t len;
  if (info[1].IsTypedArray()) {
    ViewBytes(info[1], &src, &len);
  } else if (info[1].IsArrayBuffer()) {
    Napi::ArrayBuffer b = info[1].As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(b.Data());
    len = b.ByteLength();
  } else {
    ThrowTypeError(env, "src must be a Uint8Array or an ArrayBuffer");
  }
  if (src == nullptr || len == 0) ThrowRangeError(env, "src is empty or detached");
  std::unique_lock<std::mutex> order;
  if (ordered_.load(std::memory_order_acquire) && info.Length() > 3) {
    order = std::unique_lock<std::mutex>(orderMutex_);
    if (OrderedAndBehind(info, 3)) ThrowErrno(env, EAGAIN, "UFFDIO_COPY", 0);
  }
  IoctlResult r = Copy(fd, dst, src, len, ArgU64(info, 2));
  if (order.owns_lock()) order.unlock();
  if (Existed(info, 4, r)) return Napi::Number::New(env, kExisted);
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_COPY", r.bytes);
  stats_.CountResolve(static_cast<uint64_t>(r.bytes));
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

// (dst, srcAddress, length, mode) -> bytes copied. The source is memory of this process
// (a Region): lib/ checks that it lies inside a live one.
Napi::Value Userfaultfd::CopyFromAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_COPY");
  uint64_t dst = ArgU64(info, 0), src = ArgU64(info, 1), len = ArgU64(info, 2);
  IoctlResult r = Copy(fd, dst, reinterpret_cast<const void*>(src), len, ArgU64(info, 3));
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_COPY", r.bytes);
  stats_.CountResolve(static_cast<uint64_t>(r.bytes));
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

// (start, length, mode, existOk?, seen?) -> bytes zeroed, or kExisted. seen: see SetOrdered.
Napi::Value Userfaultfd::Zeropage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_ZEROPAGE");
  RangeArgs a = ReadRange(info);
  std::unique_lock<std::mutex> order;
  if (ordered_.load(std::memory_order_acquire) && info.Length() > 4) {
    order = std::unique_lock<std::mutex>(orderMutex_);
    if (OrderedAndBehind(info, 4)) ThrowErrno(env, EAGAIN, "UFFDIO_ZEROPAGE", 0);
  }
  IoctlResult r = uffd::Zeropage(fd, a.start, a.length, a.mode);
  if (order.owns_lock()) order.unlock();
  if (Existed(info, 3, r)) return Napi::Number::New(env, kExisted);
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_ZEROPAGE", r.bytes);
  stats_.CountResolve(static_cast<uint64_t>(r.bytes));
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

Napi::Value Userfaultfd::Wake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_WAKE");
  RangeArgs a = ReadRange(info);
  int err = uffd::Wake(fd, a.start, a.length);
  if (err != 0) ThrowErrno(env, err, "UFFDIO_WAKE");
  stats_.CountWake();
  return env.Undefined();
}

Napi::Value Userfaultfd::WriteProtect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_WRITEPROTECT");
  RangeArgs a = ReadRange(info);
  int err = uffd::WriteProtect(fd, a.start, a.length, a.mode);
  if (err != 0) ThrowErrno(env, err, "UFFDIO_WRITEPROTECT");
  return env.Undefined();
}

Napi::Value Userfaultfd::Continue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_CONTINUE");
  RangeArgs a = ReadRange(info);
  IoctlResult r = uffd::Continue(fd, a.start, a.length, a.mode);
  if (Existed(info, 3, r)) return Napi::Number::New(env, kExisted);
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_CONTINUE", r.bytes);
  stats_.CountResolve(static_cast<uint64_t>(r.bytes));
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

Napi::Value Userfaultfd::Poison(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_POISON");
  RangeArgs a = ReadRange(info);
  IoctlResult r = uffd::Poison(fd, a.start, a.length, a.mode);
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_POISON", r.bytes);
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

// (dst, src, length, mode, existOk) -> bytes moved
Napi::Value Userfaultfd::Move(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "UFFDIO_MOVE");
  uint64_t dst = ArgU64(info, 0), src = ArgU64(info, 1), len = ArgU64(info, 2);
  IoctlResult r = uffd::Move(fd, dst, src, len, ArgU64(info, 3));
  if (Existed(info, 4, r)) return Napi::Number::New(env, kExisted);
  if (r.err != 0) ThrowErrno(env, r.err, "UFFDIO_MOVE", r.bytes);
  stats_.CountResolve(static_cast<uint64_t>(r.bytes));
  return Napi::Number::New(env, static_cast<double>(r.bytes));
}

Napi::Value Userfaultfd::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

// The cheapest call into the binding: the benchmarks' measure of call overhead.
Napi::Value Userfaultfd::Noop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// () -> { copy, wake }: this uffd's per-fault calls as plain functions (fast_ioctl.h).
Napi::Value Userfaultfd::FastMethods(const Napi::CallbackInfo& info) {
  CheckedFd(info.Env(), "fastMethods");
  return MakeFastMethods(info.Env(), fast_);
}

// (onBatch(count), scratch: Uint8Array). JS thread: its tid is the one the guard protects.
Napi::Value Userfaultfd::StartReader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "poll");
  if (reader_ != nullptr) return env.Undefined();
  if (!info[0].IsFunction() || !info[1].IsTypedArray()) {
    ThrowTypeError(env, "startReader(onBatch, scratch)");
  }
  jsTid_ = gettid();
  auto* reader =
      new FaultReader(env, fd, this, info[0].As<Napi::Function>(), info[1].As<Napi::Uint8Array>());
  // Before the thread starts: it reads claims_ (and jsTid_) from its first wait on.
  claims_ = WatchReadClaims(inode_, this, [reader] { reader->Nudge(); });
  try {
    reader->Start(env);  // on failure it has stopped itself (and is deleted by its queue)
  } catch (...) {
    UnwatchReadClaims(inode_, this);
    claims_ = nullptr;
    throw;
  }
  reader_ = reader;
  UpdateDirect(env);
  return env.Undefined();
}

// (allowed: boolean) -> whether the JS thread now reads the uffd itself. For the benchmarks,
// which time the reader thread's hop against the JS thread's own reads in one run.
Napi::Value Userfaultfd::SetJsReads(const Napi::CallbackInfo& info) {
  jsReads_ = ArgBool(info, 0);
  UpdateDirect(info.Env());
  return Napi::Boolean::New(info.Env(), reader_ != nullptr && reader_->direct());
}

void Userfaultfd::UpdateDirect(Napi::Env env) {
  if (reader_ == nullptr) return;
  // Native page sources and snapshots answer on the reader thread, and must, since the JS
  // thread may touch their memory itself. Non-cooperative events stop the thread that caused
  // them, often the JS thread itself (madvise, munmap, fork), until they are read: the reader
  // thread reads them at once.
  constexpr uint64_t kWaitingEvents = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                                      UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;
  bool snapshotting;
  {
    std::lock_guard<std::mutex> lock(snapshotsMutex_);
    snapshotting = !snapshots_.empty();
  }
  bool direct = jsReads_ && consumer_.load(std::memory_order_relaxed) && servedCount_ == 0 &&
                !snapshotting && (features_ & kWaitingEvents) == 0;
  reader_->SetDirect(env, direct);
}

// () -> undefined. JS thread: this object consumes the uffd's messages (a listener, events(),
// serve(), readSync()): a reader elsewhere in the process that only keeps non-cooperative events
// from blocking steps aside for it. Idempotent; released at close.
Napi::Value Userfaultfd::ClaimReadsMethod(const Napi::CallbackInfo& info) {
  CheckedFd(info.Env(), "read");
  ClaimReadsOnce();
  return info.Env().Undefined();
}

void Userfaultfd::ClaimReadsOnce() {
  if (consumer_.exchange(true)) return;
  ClaimReads(inode_);
  UpdateDirect(Napi::Env(env_));
}

// Reader thread: a reader with no consumer of its own leaves the messages to one elsewhere.
bool Userfaultfd::ShouldYield() {
  return !consumer_.load(std::memory_order_acquire) && claims_ != nullptr &&
         claims_->load(std::memory_order_acquire) > 0;
}

Napi::Value Userfaultfd::RefReader(const Napi::CallbackInfo& info) {
  if (reader_ != nullptr) reader_->Ref();
  return info.Env().Undefined();
}

Napi::Value Userfaultfd::UnrefReader(const Napi::CallbackInfo& info) {
  if (reader_ != nullptr) reader_->Unref();
  return info.Env().Undefined();
}

Napi::Value Userfaultfd::SetSelfFaultPolicy(const Napi::CallbackInfo& info) {
  int p = ArgInt(info, 0);
  if (p < 0 || p > 3) ThrowRangeError(info.Env(), "unknown self-fault policy");
  selfFaultPolicy_.store(p, std::memory_order_relaxed);
  return info.Env().Undefined();
}

// (start, length, kind (SourceKind), source, offset, readahead,
//  pread, zeroRemoved, record, prefetch, unit, prefetchOptions, runs, follow, sourceId) -> id.
//  record, prefetch, prefetchOptions: see AddWorkingSet. unit: the mapping's page size (lib/
//  checks it), 0: base pages.
//  runs: a BigUint64Array of [at, length, offset] triples, the source seen sparse
//  (sparse_source.h; lib/ checks them), or undefined. follow: see ServedRanges::Add. sourceId:
//  the JS PageSource's (0: none); file sources served again with the same id on this uffd
//  share one native source (one fd, whatever the ranges).
// JS thread: the native source of a file source this uffd serves already under `sourceId`
// (nullptr: none, or gone with the ranges that used it).
std::shared_ptr<PageSource> Userfaultfd::SharedSource(uint32_t sourceId) {
  sharedSources_.erase(std::remove_if(sharedSources_.begin(), sharedSources_.end(),
                                      [](const auto& s) { return s.second.expired(); }),
                       sharedSources_.end());
  if (sourceId == 0) return nullptr;
  for (const auto& s : sharedSources_) {
    if (s.first == sourceId) return s.second.lock();
  }
  return nullptr;
}

// JS thread: a BigUint64Array of [at, length, offset] triples.
std::vector<SparseRun> Userfaultfd::SparseRuns(Napi::Value value) {
  Napi::TypedArray a = value.As<Napi::TypedArray>();
  if (a.TypedArrayType() != napi_biguint64_array || a.ElementLength() % 3 != 0)
    ThrowTypeError(value.Env(), "runs must be a BigUint64Array of triples");
  const uint64_t* v = reinterpret_cast<const uint64_t*>(
      static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
  std::vector<SparseRun> runs;
  runs.reserve(a.ElementLength() / 3);
  for (size_t i = 0; i < a.ElementLength(); i += 3)
    runs.push_back(SparseRun{v[i], v[i + 1], v[i + 2]});
  return runs;
}

Napi::Value Userfaultfd::Serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckedFd(env, "serve");
  uint64_t start = ArgU64(info, 0), length = ArgU64(info, 1);
  auto kind = static_cast<SourceKind>(ArgInt(info, 2));
  uint64_t offset = ArgU64(info, 4), readahead = ArgU64(info, 5);
  FileMode mode = ArgBool(info, 6) ? FileMode::kPread : FileMode::kMapped;
  uint64_t unit = info.Length() > 10 ? ArgU64(info, 10) : 0;
  if (unit != 0 && (unit < pageSize_ || (unit & (unit - 1)) != 0))
    ThrowRangeError(env, "unit must be a page size");
  // Huge pages have no UFFDIO_ZEROPAGE: zeros to copy from, at least one huge page of them.
  if (unit > pageSize_ && !ServedRanges::PrepareZeros(unit))
    ThrowErrno(env, errno, "mmap", kNoBytes, "zeros for huge pages");
  const uint64_t window = ServedRanges::CopyWindow(unit);
  std::unique_ptr<PageSource> source;
  std::shared_ptr<PageSource>
      prefetchSource;  // the prefetch thread's own (a file's bounce buffer is not shared)
  int adviseFd = -1;   // a file source's fd for the prefetch thread's read-ahead hints
  // A compact page file replaces the image for the prefetch thread: no copy of the image then.
  bool prefetch =
      ((info.Length() > 9 && info[9].IsTypedArray()) || LoadsLater(info)) && PagesFd(info) < 0;
  Napi::Reference<Napi::Value> keep;
  Mapping* keepMapping = nullptr;
  uint32_t sourceId = info.Length() > 14 ? static_cast<uint32_t>(ArgU64(info, 14)) : 0;
  if (kind == SourceKind::kShared) ThrowRangeError(env, "unknown page source kind");
  std::shared_ptr<PageSource> reused = prefetch ? nullptr : SharedSource(sourceId);
  if (reused) kind = SourceKind::kShared;
  switch (kind) {
    case SourceKind::kShared:
      break;
    case SourceKind::kZero:
      source = MakeZeroSource();
      break;
    case SourceKind::kBuffer: {
      if (!info[3].IsTypedArray()) ThrowTypeError(env, "buffer source must be a Uint8Array");
      const uint8_t* data;
      size_t bytes;
      ViewBytes(info[3], &data, &bytes);
      uint64_t len = bytes;
      uint64_t skip = std::min<uint64_t>(offset, len);
      const uint8_t* from = data == nullptr ? nullptr : data + skip;
      // A view of a Region: that Region's unmap() must wait until this source is gone.
      keepMapping = Mapping::AcquireContaining(data, bytes);
      if (keepMapping != nullptr || !Detachable(info[3])) {
        source = MakeMemorySource(from, len - skip);
        keep = Napi::Persistent(info[3]);
      } else {
        // An ArrayBuffer can be detached (transferred) and its memory freed while served: the
        // reader would then copy freed heap bytes into the region. Serve a copy instead.
        source = MakeCopiedMemorySource(from, len - skip);
        if (!source) ThrowErrno(env, errno, "mmap", kNoBytes, "a copy of the buffer source");
      }
      break;
    }
    case SourceKind::kFd:
    case SourceKind::kPath: {
      int fd2 = -1;
      source =
          FileSourceFromJs(env, kind, info[3], offset, mode, prefetch ? &fd2 : nullptr, window);
      if (prefetch) {
        if (fd2 < 0) ThrowErrno(env, errno, "dup");
        adviseFd = fcntl(fd2, F_DUPFD_CLOEXEC, 0);  // -1: no hints, prefetch still works
        const char* failed = "mmap";
        prefetchSource = MakeFileSource(fd2, offset, mode, &failed, window);
        if (!prefetchSource && adviseFd >= 0) close(adviseFd);
        if (!prefetchSource) ThrowErrno(env, errno, failed);
      }
      break;
    }
    default:
      ThrowRangeError(env, "unknown page source kind");
  }
  bool zeroRemoved = info.Length() > 7 && ArgBool(info, 7);
  std::shared_ptr<PageSource> shared = reused ? std::move(reused) : std::move(source);
  if (sourceId != 0 && (kind == SourceKind::kFd || kind == SourceKind::kPath))
    sharedSources_.emplace_back(sourceId, shared);
  if (info.Length() > 12 && info[12].IsTypedArray()) {
    std::vector<SparseRun> runs = SparseRuns(info[12]);
    shared = MakeSparseSource(std::move(shared), runs);
    if (prefetchSource)
      prefetchSource = MakeSparseSource(std::move(prefetchSource), std::move(runs));
  }
  bool follow = info.Length() > 13 && ArgBool(info, 13);
  // Zero and memory sources keep no per-call state: the prefetch thread can share them.
  if (!prefetchSource) prefetchSource = shared;
  servedCount_++;
  UpdateDirect(env);  // before the range is served: its faults are the reader thread's
  uint32_t id = served_.Add(start, length, shared, readahead, zeroRemoved, unit, follow);
  if (!keep.IsEmpty()) keepAlive_.push_back(KeepAlive{id, std::move(keep), keepMapping});
  AddWorkingSet(info, id, start, length, shared, std::move(prefetchSource), adviseFd, offset);
  return Napi::Number::New(env, id);
}

// (start, length, image: SharedImage, readahead, minor) -> id. lib/ has checked that the range
// maps the image's memfd privately, whole, and is registered MISSING (and MINOR when `minor`).
Napi::Value Userfaultfd::ServeImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckedFd(env, "serve");
  uint64_t start = ArgU64(info, 0), length = ArgU64(info, 1), readahead = ArgU64(info, 3);
  std::shared_ptr<SharedImage> image = ImageObject::From(info[2]);
  if (!image) ThrowTypeError(env, "image must be an open SharedImage");
  if (length != image->size()) ThrowRangeError(env, "a clone maps the whole image");
  servedCount_++;
  UpdateDirect(env);  // before the range is served: its faults are the reader thread's
  return Napi::Number::New(
      env, served_.AddImage(start, length, std::move(image), readahead, ArgBool(info, 4)));
}

// Whether Serve()'s prefetchOptions (arg 11) give a set to load later (LoadLater).
bool Userfaultfd::LoadsLater(const Napi::CallbackInfo& info) {
  return info.Length() > 11 && info[11].IsObject() &&
         info[11].As<Napi::Object>().Get("setFd").IsNumber();
}

// The compact page file's fd in Serve()'s prefetchOptions (arg 11), or -1.
int Userfaultfd::PagesFd(const Napi::CallbackInfo& info) {
  if (info.Length() <= 11 || !info[11].IsObject()) return -1;
  Napi::Value v = info[11].As<Napi::Object>().Get("pagesFd");
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1;
}

// (…, record: boolean, prefetch: Uint32Array of [firstPage, pageCount, flags] words | null, unit,
//  prefetchOptions: { eager: boolean, window: pages (0: adaptive), pagesFd: fd | -1 (the compact
//  page file, checked by lib/; duplicated here), pagesOffset: its first page's offset,
//  pagesLaterFd: fd (background mode, with setFd: the page file, checked once the set is in)
//  }, and LoadLater's keys).
// JS thread. Throws (with the range left unserved) when the prefetch thread cannot start.
void Userfaultfd::AddWorkingSet(const Napi::CallbackInfo& info, uint32_t id, uint64_t start,
                                uint64_t length, std::shared_ptr<PageSource> readerSource,
                                std::shared_ptr<PageSource> prefetchSource, int adviseFd,
                                uint64_t fileOffset) {
  Napi::Env env = info.Env();
  // Closed on every path that does not hand it to a prefetcher.
  struct FdGuard {
    int fd;
    ~FdGuard() {
      if (fd >= 0) close(fd);
    }
  } guard{adviseFd};
  SetSetup setup;
  setup.record = info.Length() > 8 && ArgBool(info, 8);
  std::vector<PageRun> loaded;
  if (info.Length() > 9 && info[9].IsTypedArray() &&
      info[9].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
    Napi::Uint32Array a = info[9].As<Napi::Uint32Array>();
    int64_t bad;
    loaded = SetOrder::FromWords(a.Data(), a.ElementLength() / 3, length / pageSize_, &setup.loaded,
                                 &bad);
    if (bad >= 0) {
      RemoveServed(id);
      std::string m = "working set run " + std::to_string(bad) +
                      ": empty, outside the range, overlapping an earlier run or bad flags";
      ThrowRangeError(env, m.c_str());
    }
  }
  Napi::Object o = info.Length() > 11 && info[11].IsObject() ? info[11].As<Napi::Object>()
                                                             : Napi::Object::New(env);
  bool deferred = LoadLater(env, o, &setup);
  if (!setup.record && loaded.empty() && !deferred) return;
  std::shared_ptr<PageSource> readerPages, prefetchPages;
  if (!loaded.empty() || deferred) {
    setup.mode =
        o.Get("eager").ToBoolean() ? Prefetcher::Mode::kEager : Prefetcher::Mode::kBackground;
    Napi::Value w = o.Get("window");
    setup.window = w.IsNumber() ? w.As<Napi::Number>().Uint32Value() : 0;
    int pagesFd = PagesFd(info);
    if (pagesFd >= 0) {
      Napi::Value off = o.Get("pagesOffset");
      uint64_t pagesOffset =
          off.IsNumber() ? static_cast<uint64_t>(off.As<Napi::Number>().Int64Value()) : 0;
      const char* failed = "dup";
      for (auto* p : {&readerPages, &prefetchPages}) {
        int fd = fcntl(pagesFd, F_DUPFD_CLOEXEC, 0);
        // Mapped: the set's pages lie in order, so UFFDIO_COPY reads them straight from the
        // page cache, one minor fault per few pages (fault-around), with no read(2) per run.
        if (fd >= 0) *p = MakeFileSource(fd, pagesOffset, FileMode::kMapped, &failed);
        if (!*p) {
          int err = errno;
          RemoveServed(id);
          ThrowErrno(env, err, failed, kNoBytes, "the working set's page file");
        }
      }
      guard.fd = fcntl(pagesFd, F_DUPFD_CLOEXEC, 0);  // -1: no hints, prefetch still works
      fileOffset = pagesOffset;
    }
    Napi::Value later = o.Get("pagesLaterFd");
    if (deferred && later.IsNumber()) {
      // Checked on the prefetch thread once the set is in (WorkingSet::UsePagesFile), against
      // the source as the prefetch thread reads it.
      setup.pagesFd = fcntl(later.As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
      int err = setup.pagesFd < 0 ? errno : 0;
      setup.pagesSource.offset = fileOffset;
      if (err == 0) {
        // guard.fd: the source's fd for hints; -1 only when duplicating it failed.
        setup.pagesSource.fd = guard.fd >= 0 ? fcntl(guard.fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (setup.pagesSource.fd < 0) err = guard.fd >= 0 ? errno : EMFILE;
      }
      if (err != 0) {
        if (setup.pagesFd >= 0) close(setup.pagesFd);
        if (setup.pagesSource.fd >= 0) close(setup.pagesSource.fd);
        RemoveServed(id);
        ThrowErrno(env, err, "dup", kNoBytes, "the working set's page file");
      }
    }
    setup.order =
        deferred ? std::make_shared<SetOrder>() : std::make_shared<SetOrder>(std::move(loaded));
    setup.readerFill =
        std::make_unique<SetFill>(fd_, start, pageSize_, readerSource, std::move(readerPages));
    setup.prefetchFill = std::make_unique<SetFill>(fd_, start, pageSize_, std::move(prefetchSource),
                                                   std::move(prefetchPages));
  }
  setup.adviseFd = guard.fd;
  setup.adviseOffset = fileOffset;
  guard.fd = -1;
  int err = workingSets_.Add(id, start, length, pageSize_, fd_, std::move(setup));
  if (err != 0) {
    RemoveServed(id);
    ThrowErrno(env, err, "pthread_create");
  }
}

// JS thread: prefetchOptions' `setFd` (the set's file, duplicated here), `shape` ([pageSize,
// sourceSize, rangeLength]) and `onSetError(kind, reason, detail, a, b, c)`: the set is read on
// the prefetch thread (background mode), and a file that is not a set for the range is
// reported through onSetError (SetLoadFailure's fields), on the JS thread, later.
bool Userfaultfd::LoadLater(Napi::Env env, Napi::Object o, SetSetup* setup) {
  Napi::Value fdValue = o.Get("setFd");
  if (!fdValue.IsNumber()) return false;
  Napi::Value cb = o.Get("onSetError");
  Napi::Value shape = o.Get("shape");
  if (!cb.IsFunction() || !shape.IsArray()) ThrowTypeError(env, "setFd needs onSetError and shape");
  Napi::Array a = shape.As<Napi::Array>();
  setup->shape.pageSize = static_cast<uint64_t>(a.Get(0u).As<Napi::Number>().Int64Value());
  setup->shape.sourceSize = static_cast<uint64_t>(a.Get(1u).As<Napi::Number>().Int64Value());
  setup->shape.rangeLength = static_cast<uint64_t>(a.Get(2u).As<Napi::Number>().Int64Value());
  if (setup->shape.pageSize == 0) ThrowRangeError(env, "shape: page size 0");
  setup->setFd = fcntl(fdValue.As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (setup->setFd < 0) ThrowErrno(env, errno, "dup", kNoBytes, "the working set");
  // Unref'd: a set still loading does not hold the process. Released with the set.
  auto* tsfn = new Napi::ThreadSafeFunction(
      Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "userfaultfd working set", 0, 1));
  tsfn->Unref(env);
  std::shared_ptr<Napi::ThreadSafeFunction> report(tsfn, [](Napi::ThreadSafeFunction* t) {
    t->Release();
    delete t;
  });
  setup->onLoadFailed = [report](const SetLoadFailure& f) {  // called on the prefetch thread
    auto* copy = new SetLoadFailure(f);
    auto call = [](Napi::Env e, Napi::Function fn, SetLoadFailure* d) {
      double n[] = {static_cast<double>(d->kind),   static_cast<double>(d->reason),
                    static_cast<double>(d->detail), static_cast<double>(d->a),
                    static_cast<double>(d->b),      static_cast<double>(d->c)};
      delete d;
      if (e == nullptr || fn.IsEmpty()) return;
      std::vector<napi_value> args;
      for (double x : n) args.push_back(Napi::Number::New(e, x));
      fn.Call(args);
    };
    if (report->NonBlockingCall(copy, call) != napi_ok) delete copy;
  };
  return true;
}

// (id) -> Uint32Array of [firstPage, pageCount, write] triples, in first-touch order.
Napi::Value Userfaultfd::Recorded(const Napi::CallbackInfo& info) {
  return RunsToJs(info.Env(), workingSets_.Recorded(static_cast<uint32_t>(ArgInt(info, 0))));
}

// (id) -> Uint8Array, one bit per page of the range (page i: bit i & 7 of byte i >> 3): the
// pages of the loaded set installed ahead of the program; null without a loaded set.
Napi::Value Userfaultfd::Installed(const Napi::CallbackInfo& info) {
  std::vector<uint8_t> bits = workingSets_.Installed(static_cast<uint32_t>(ArgInt(info, 0)));
  if (bits.empty()) return info.Env().Null();
  return Napi::Buffer<uint8_t>::Copy(info.Env(), bits.data(), bits.size());
}

Napi::Value Userfaultfd::Unserve(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), RemoveServed(static_cast<uint32_t>(ArgInt(info, 0))));
}

bool Userfaultfd::RemoveServed(uint32_t id) {
  workingSets_.Remove(id);  // joins its prefetch thread before the source goes
  bool removed = served_.Remove(id);
  if (removed && servedCount_ > 0 && --servedCount_ == 0) UpdateDirect(Napi::Env(env_));
  for (auto it = keepAlive_.begin(); it != keepAlive_.end(); ++it) {
    if (it->id == id) {
      ReleaseKeepAlive(*it);
      keepAlive_.erase(it);
      break;
    }
  }
  return removed;
}

// The source that read the buffer is gone (served_ no longer holds it): the Region may unmap
// and the buffer may be collected.
void Userfaultfd::ReleaseKeepAlive(KeepAlive& k) {
  if (k.mapping != nullptr) k.mapping->EndAccess();
  k.mapping = nullptr;
  k.buffer.Reset();
}

Napi::Value Userfaultfd::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("faults", Napi::Number::New(env, static_cast<double>(stats_.faults())));
  r.Set("copies", Napi::Number::New(env, static_cast<double>(stats_.copies())));
  r.Set("bytes", Napi::Number::New(env, static_cast<double>(stats_.bytes())));
  r.Set("wakeups", Napi::Number::New(env, static_cast<double>(stats_.wakeups())));
  r.Set("p50", Napi::Number::New(env, static_cast<double>(stats_.Percentile(0.5))));
  r.Set("p99", Napi::Number::New(env, static_cast<double>(stats_.Percentile(0.99))));
  r.Set("filled", Napi::Number::New(env, static_cast<double>(stats_.filled() / pageSize_)));
  WorkingSetStats& ws = workingSets_.stats();
  r.Set(
      "demandFaults",
      Napi::Number::New(env, static_cast<double>(ws.demandFaults.load(std::memory_order_relaxed))));
  r.Set("prefetched",
        Napi::Number::New(env, static_cast<double>(ws.prefetched.load(std::memory_order_relaxed))));
  r.Set("prefetchMisses",
        Napi::Number::New(env,
                          static_cast<double>(ws.prefetchMisses.load(std::memory_order_relaxed))));
  return r;
}

// (scratch: Uint8Array, max, timeoutMs) -> messages read into scratch. JS thread; lib/ has
// checked that the reader thread is not running (it would race this read for the messages).
Napi::Value Userfaultfd::ReadSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "read");
  if (!info[0].IsTypedArray()) ThrowTypeError(env, "scratch must be a Uint8Array");
  const uint8_t* data;
  size_t bytes;
  ViewBytes(info[0], &data, &bytes);
  size_t max =
      std::min<size_t>(static_cast<size_t>(std::max(ArgInt(info, 1), 0)), bytes / sizeof(uffd_msg));
  if (max == 0) ThrowRangeError(env, "scratch holds no message");
  auto* msgs = reinterpret_cast<uffd_msg*>(const_cast<uint8_t*>(data));
  ClaimReadsOnce();
  long n = ReadMessagesSync(env, fd, msgs, max, ArgInt(info, 2));
  if (n < 0) ThrowErrno(env, static_cast<int>(-n), "read");
  for (long i = 0; i < n; i++) {
    if (msgs[i].event == UFFD_EVENT_PAGEFAULT) stats_.CountFault();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// Reader thread.
Disposition Userfaultfd::OnMessage(const uffd_msg& msg, Delivery* out) {
  switch (msg.event) {
    case UFFD_EVENT_PAGEFAULT: {
      stats_.CountFault();
      uint64_t address = msg.arg.pagefault.address;
      int err = 0;
      // Write-protect faults are the handler's to decide; sources fill missing pages, and a
      // shared image's clones registered MINOR take minor faults too.
      uint64_t flags = msg.arg.pagefault.flags;
      bool missing = (flags & (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR)) == 0;
      bool minor = (flags & (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR)) ==
                   UFFD_PAGEFAULT_FLAG_MINOR;
      bool write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
      // Only this process's threads can be the JS thread; a tid from another pid namespace can
      // equal its tid (local_uffds.h).
      bool self = localMemory_ && jsTid_ != 0 &&
                  msg.arg.pagefault.feat.ptid == static_cast<uint32_t>(jsTid_) &&
                  selfFaultPolicy_.load(std::memory_order_relaxed) != 0;
      if (missing || minor) {
        // In a range with a working set, counted and recorded before the answer wakes the
        // faulting thread: a program that saves its set right after its last touch finds it.
        // An eager install holds its range's faults until the set is in (retried every
        // FaultReader::kRetryMs; faults elsewhere and events go on meanwhile).
        if (workingSets_.Holds(address)) {
          stats_.UncountFault();
          return Disposition::kRetry;
        }
        bool counted = missing && workingSets_.OnFault(address, write);
        // A served range's demand fault is counted before its answer wakes the faulting thread,
        // which may read stats() at once (as OnFault counts a working set's): taken back below if
        // nothing answered it, or if it waits for a retry (counted again then).
        bool early = missing && !counted && served_.Serves(address);
        if (early) workingSets_.CountDemand();
        workingSets_.gate().Begin();
        // Along a working set first (missing faults only: a set's ranges are never clones'), then
        // the served ranges, which answer a shared image's clones' minor faults too.
        ServedRanges::Outcome outcome = missing
                                            ? workingSets_.AnswerAlong(fd_, address, stats_, &err)
                                            : ServedRanges::Outcome::kNotServed;
        if (outcome == ServedRanges::Outcome::kNotServed)
          outcome = served_.Answer(fd_, address, minor, write, stats_, &err);
        workingSets_.gate().End();
        bool answered = outcome != ServedRanges::Outcome::kNotServed;
        if (outcome == ServedRanges::Outcome::kRetry) {
          if (counted || early) workingSets_.UncountDemand();
        } else if (early && !answered) {
          workingSets_.UncountDemand();
        } else if (missing && !counted && !early && answered) {
          workingSets_.CountDemand();  // a range served since Serves() looked
        }
        switch (outcome) {
          case ServedRanges::Outcome::kAnswered:
          case ServedRanges::Outcome::kOwnerGone:
            return Disposition::kHandled;
          case ServedRanges::Outcome::kRetry:
            stats_.UncountFault();  // counted again when retried
            return Disposition::kRetry;
          case ServedRanges::Outcome::kFailed:
            // The JS thread itself cannot wait for JavaScript to answer: the guard does.
            if (self) {
              AnswerSelfFault(msg, out);
              out->note = kNoteSourceFailedAnswered;
            } else {
              out->note = kNoteSourceFailed;
            }
            out->err = err;
            return Disposition::kToJs;
          case ServedRanges::Outcome::kNotServed:
            break;
        }
      }
      if ((msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) && SaveBeforeWrite(address)) {
        return Disposition::kHandled;
      }
      if (self) AnswerSelfFault(msg, out);
      return Disposition::kToJs;
    }
    default:  // layout events were applied in OnRead; JS hears of them all
      return Disposition::kToJs;
  }
}

// Reader thread, while no message waits: a chunk of the background fill.
FaultHandler::Work Userfaultfd::Background(Delivery* out, bool* post) {
  int err = 0;
  switch (served_.FillSome(fd_, stats_, &err)) {
    case ServedRanges::FillStep::kIdle:
      return Work::kIdle;
    case ServedRanges::FillStep::kMore:
      return Work::kMore;
    case ServedRanges::FillStep::kLater:
      return Work::kLater;
    case ServedRanges::FillStep::kDone:
    case ServedRanges::FillStep::kFailed:
      break;
  }
  out->note = kNoteFilled;
  out->err = err;
  *post = true;
  return Work::kIdle;
}

// (address) -> 0: no served range holds it, 1: answered, 2: a layout event is unread (the
// caller wakes the page, so that it faults again once the reader has read it), -errno: the
// source failed. JS thread: a
// fault the reader read before its range was served, answered from the ranges as they are now.
Napi::Value Userfaultfd::AnswerServed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "serve");
  int err = 0;
  // A missing fault (lib/ passes no minor ones); its write flag only matters to image clones.
  switch (served_.Answer(fd, ArgU64(info, 0), false, false, stats_, &err)) {
    case ServedRanges::Outcome::kNotServed:
      return Napi::Number::New(env, 0);
    case ServedRanges::Outcome::kFailed:
      return Napi::Number::New(env, -(err != 0 ? err : EIO));
    case ServedRanges::Outcome::kRetry:
      return Napi::Number::New(env, 2);
    case ServedRanges::Outcome::kAnswered:
    case ServedRanges::Outcome::kOwnerGone:
      break;
  }
  return Napi::Number::New(env, 1);
}

// () -> undefined. JS thread: from now on copy() and zeropage() given `seen` (the layout events
// JS has handled) fail with EAGAIN while the reader has read more: an answer made after an
// asynchronous read can then never land where a REMAP, UNMAP or REMOVE moved or dropped the
// memory, nor in a parent whose FORK JS has not seen (the kernel's own EAGAIN, mmap_changing,
// ends as soon as the reader reads the event).
Napi::Value Userfaultfd::SetOrdered(const Napi::CallbackInfo& info) {
  ordered_.store(true, std::memory_order_release);
  return info.Env().Undefined();
}

// JS thread, under orderMutex_.
bool Userfaultfd::OrderedAndBehind(const Napi::CallbackInfo& info, size_t seenArg) {
  return ArgU64(info, seenArg) != layoutRead_;
}

// Reader thread.
std::mutex* Userfaultfd::ReadLock() {
  return ordered_.load(std::memory_order_acquire) ? &orderMutex_ : nullptr;
}

// Reader thread, under ReadLock() when ordered.
// The layout events of a batch are applied to the served ranges here, in order, before any
// fault of the batch is answered: reading an event lets its caller go on (munmap, madvise,
// fork return), so a fault read with it is answered with the layout it now has. A fault
// queued before a FORK is then still missing in the child's copy (as it is in the child), and
// one before a REMOVE of its page reads zeros (as if it came after the madvise).
void Userfaultfd::OnRead(const uffd_msg* msgs, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const uffd_msg& m = msgs[i];
    switch (m.event) {
      case UFFD_EVENT_REMAP:
        workingSets_.OnLayoutChange(m.arg.remap.from, m.arg.remap.from + m.arg.remap.len);
        served_.Remap(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
        break;
      case UFFD_EVENT_FORK: {
        // The child's copy of the following ranges: JavaScript hands it to the child's uffd
        // (AdoptFork) before that one's reader starts.
        ServedRanges::RangeList inherited = served_.CloneFollowing();
        if (!inherited.empty()) {
          std::lock_guard<std::mutex> lock(forksMutex_);
          forks_.emplace_back(static_cast<int>(m.arg.fork.ufd), std::move(inherited));
        }
        break;
      }
      case UFFD_EVENT_REMOVE:
      case UFFD_EVENT_UNMAP:
        workingSets_.OnLayoutChange(m.arg.remove.start, m.arg.remove.end);
        served_.Forget(m.arg.remove.start, m.arg.remove.end, m.event == UFFD_EVENT_REMOVE);
        break;
      default:
        continue;
    }
    layoutRead_++;
  }
}

// (minChunk, maxChunk) -> undefined. JS thread; the reader is running (lib/ started it).
Napi::Value Userfaultfd::StartFill(const Napi::CallbackInfo& info) {
  CheckedFd(info.Env(), "fill");
  served_.StartFill(ArgU64(info, 0), ArgU64(info, 1));
  if (reader_ != nullptr) reader_->Nudge();
  return info.Env().Undefined();
}

// (childFd, child: native Userfaultfd) -> ranges adopted. JS thread, before the child's reader
// starts: the child's uffd serves what the parent's following ranges were at the fork.
Napi::Value Userfaultfd::AdoptFork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int childFd = ArgInt(info, 0);
  if (!info[1].IsObject()) ThrowTypeError(env, "child must be a native Userfaultfd");
  Userfaultfd* child = Unwrap(info[1].As<Napi::Object>());
  ServedRanges::RangeList ranges = TakeFork(childFd);
  size_t n = ranges.size();
  if (child != nullptr && n > 0) {
    // Served natively from now on: the child's reader thread answers them, not its JS thread.
    child->servedCount_ += n;
    child->UpdateDirect(env);
    child->served_.Adopt(std::move(ranges));
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// (childFd) -> undefined. JS thread: the fork child's fd was closed unadopted.
Napi::Value Userfaultfd::DropFork(const Napi::CallbackInfo& info) {
  TakeFork(ArgInt(info, 0));
  return info.Env().Undefined();
}

// JS thread: the ranges parked for the fork child whose uffd is `childFd` (the first: fds
// are not reused before JavaScript has taken or closed the earlier one).
ServedRanges::RangeList Userfaultfd::TakeFork(int childFd) {
  std::lock_guard<std::mutex> lock(forksMutex_);
  for (auto it = forks_.begin(); it != forks_.end(); ++it) {
    if (it->first != childFd) continue;
    ServedRanges::RangeList ranges = std::move(it->second);
    forks_.erase(it);  // moved from: frees nothing under the lock the reader takes
    return ranges;
  }
  return {};
}

// Reader thread: a write to a page of a live snapshot; false when no snapshot holds it. The
// page is saved under snapshotsMutex_, so that the writer stays referenced by snapshots_ all
// along: a reference of the reader's own could be the last one (SnapshotEnd meanwhile), and
// freeing the writer here would call free(), which the reader must not (mapped_vector.h). The JS
// thread waits at most for one page to be saved; the reader never waits for JS.
bool Userfaultfd::SaveBeforeWrite(uint64_t address) {
  std::lock_guard<std::mutex> lock(snapshotsMutex_);
  for (auto& s : snapshots_) {
    if (s->Contains(address)) {
      s->OnWriteFault(address);
      return true;
    }
  }
  return false;
}

// (start, length, pageSize, destFd, populate, onDone(err, result)). JS thread. The range is
// registered for WP by lib/sources/snapshot.ts; the writer protects it, streams it and un-protects
// it.
Napi::Value Userfaultfd::Snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(env, "snapshot");
  uint64_t start = ArgU64(info, 0), length = ArgU64(info, 1), pageSize = ArgU64(info, 2);
  if (pageSize == 0 || length == 0 || length % pageSize != 0 || start % pageSize != 0) {
    ThrowRangeError(env, "snapshot range must be a non-empty page multiple");
  }
  if (!info[5].IsFunction()) ThrowTypeError(env, "onDone must be a function");
  // A duplicate: the caller may close its fd while the image is written.
  int dest = fcntl(ArgInt(info, 3), F_DUPFD_CLOEXEC, 0);
  if (dest < 0) ThrowErrno(env, errno, "dup");
  off_t at = lseek(dest, 0, SEEK_CUR);
  if (at < 0) {
    int err = errno;  // ESPIPE: pages are written out of order, at their offsets
    close(dest);
    ThrowErrno(env, err, "lseek", kNoBytes, "the snapshot destination must be a seekable file");
  }
  SnapshotWriter::Options o{
      fd, start, length, pageSize, dest, static_cast<uint64_t>(at), ArgBool(info, 4)};
  auto writer = std::make_shared<SnapshotWriter>(o);
  {
    // Grown before the lock: the reader takes it for every WP fault (mapped_vector.h).
    std::vector<std::shared_ptr<SnapshotWriter>> grown;
    if (snapshots_.size() == snapshots_.capacity()) grown.reserve(2 * snapshots_.capacity() + 1);
    std::lock_guard<std::mutex> lock(snapshotsMutex_);
    if (grown.capacity() > 0) {
      for (auto& s : snapshots_) grown.push_back(std::move(s));
      snapshots_.swap(grown);
    }
    snapshots_.push_back(writer);
  }
  UpdateDirect(env);  // before any page is protected: its write faults are the reader's
  int err = writer->Start(env, info[5].As<Napi::Function>());
  if (err != 0) {
    {
      std::lock_guard<std::mutex> lock(snapshotsMutex_);
      snapshots_.pop_back();
    }
    UpdateDirect(env);
    ThrowErrno(env, err, "pthread_create");
  }
  return env.Undefined();
}

// (start). JS thread, once the snapshot at `start` has called back: forget it.
Napi::Value Userfaultfd::SnapshotEnd(const Napi::CallbackInfo& info) {
  uint64_t start = ArgU64(info, 0);
  std::shared_ptr<SnapshotWriter> gone;
  {
    std::lock_guard<std::mutex> lock(snapshotsMutex_);
    for (size_t i = 0; i < snapshots_.size(); i++) {
      if (snapshots_[i]->Contains(start)) {
        gone = snapshots_[i];
        snapshots_.erase(snapshots_.begin() + static_cast<long>(i));
        break;
      }
    }
  }
  UpdateDirect(info.Env());
  return info.Env().Undefined();  // `gone` joins its finished thread here
}

// Reader thread. The JS thread is stopped inside the kernel on memory that only JS would
// answer: answer it by policy so that it runs again, then tell JS what happened.
void Userfaultfd::AnswerSelfFault(const uffd_msg& msg, Delivery* out) {
  uint64_t page = msg.arg.pagefault.address & ~(pageSize_ - 1);
  uint64_t flags = msg.arg.pagefault.flags;
  int err = 0;
  out->note = kNoteSelfFaultAnswered;
  if (flags & UFFD_PAGEFAULT_FLAG_WP) {
    err = uffd::WriteProtect(fd_, page, pageSize_, 0);  // un-protect, and wake
  } else if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
    err = uffd::Continue(fd_, page, pageSize_, 0).err;
  } else {
    int poisonErr = -1;  // -1: not tried
    if (selfFaultPolicy_.load(std::memory_order_relaxed) ==
        static_cast<int32_t>(SelfFaultPolicy::kSigbus)) {
      poisonErr = uffd::Poison(fd_, page, pageSize_, 0).err;
    }
    if (poisonErr == 0 || poisonErr == EEXIST) {
      err = poisonErr;  // the thread dies of SIGBUS when it runs again
    } else {
      err = ZeroFill(msg.arg.pagefault.address);
      // A kernel without UFFDIO_POISON (before 6.6), or memory it cannot poison: the zero
      // page still lets the thread run, and JS hears that the policy could not be applied.
      if (poisonErr > 0 && (err == 0 || err == EEXIST)) {
        if (err == EEXIST) uffd::Wake(fd_, page, pageSize_);
        out->note = kNoteSelfFaultFallback;
        out->err = poisonErr;
        return;
      }
    }
  }
  if (err == EEXIST) err = uffd::Wake(fd_, page, pageSize_);
  out->err = err;
}

// Reader thread: a zero page at `address`; hugetlb has no UFFDIO_ZEROPAGE, so a huge page of
// zeros is copied there instead.
int Userfaultfd::ZeroFill(uint64_t address) {
  uint64_t page = address & ~(pageSize_ - 1);
  int err = uffd::Zeropage(fd_, page, pageSize_, 0).err;
  if (err != EINVAL) return err;
  constexpr uint64_t kHuge = 2u << 20;
  static const void* zeros = [] {
    void* p = mmap(nullptr, kHuge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }();
  if (zeros == nullptr) return err;
  return uffd::Copy(fd_, address & ~(kHuge - 1), zeros, kHuge, 0).err;
}

}  // namespace uffd
