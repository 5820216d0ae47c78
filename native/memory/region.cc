#include "memory/region.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "addon.h"
#include "uffd/args.h"
#include "uffd/errors.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

namespace uffd {

void Mapping::Release() {
  if (refs_.fetch_sub(1) != 1) return;
  Unmap();
  delete this;
}

void Mapping::BeginAccess() {
  AddRef();
  accesses_.fetch_add(1);
}

void Mapping::EndAccess() {
  if (accesses_.fetch_sub(1) == 1 && unmapRequested_.load()) Unmap();
  Release();
}

namespace {
// Every mapped Mapping of the process (Workers included). The mutex also orders an unmap request
// against AcquireContaining on another thread (see there).
std::mutex gMappingsMutex;
std::set<Mapping*> gMappings;
}  // namespace

bool Mapping::TryAddRef() {
  int n = refs_.load();
  while (n > 0) {
    if (refs_.compare_exchange_weak(n, n + 1)) return true;
  }
  return false;  // the last holder is deleting it
}

// The request and the idle check under gMappingsMutex: AcquireContaining (another thread) checks
// live() and begins its access under it too, so either it sees the request and skips this
// mapping, or this sees its access and leaves the unmap to EndAccess.
void Mapping::RequestUnmap() {
  bool idle;
  {
    std::lock_guard<std::mutex> lock(gMappingsMutex);
    unmapRequested_.store(true);
    idle = accesses_.load() == 0;
  }
  if (idle) Unmap();
}

void Mapping::Track(Mapping* m) {
  std::lock_guard<std::mutex> lock(gMappingsMutex);
  gMappings.insert(m);
}

Mapping* Mapping::AcquireContaining(const void* p, size_t length) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  if (b == nullptr || length == 0) return nullptr;
  std::lock_guard<std::mutex> lock(gMappingsMutex);
  for (Mapping* m : gMappings) {
    if (b < m->addr_ || b >= m->addr_ + m->length_ || !m->live()) continue;
    // A mapping whose last holder let go (refs 0) is being unmapped and deleted by it: taking
    // a reference now would revive it for a moment and leave this access on freed memory.
    if (!m->TryAddRef()) return nullptr;
    m->accesses_.fetch_add(1);
    return m;
  }
  return nullptr;
}

void Mapping::Unmap() {
  if (unmapped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(gMappingsMutex);
    gMappings.erase(this);
  }
  munmap(addr_, length_);
  int fd = fd_.exchange(-1);
  if (fd >= 0) close(fd);
}

namespace {

// A poisoned page (UFFDIO_POISON) raises SIGBUS on access. On a thread-pool thread that would
// kill the process, so the copy runs under a guard: a SIGBUS raised inside it jumps back out
// and the access rejects with code 'SIGBUS'. Any other SIGBUS goes to the handler that was
// installed before ours, or gets the default action (the process dies of SIGBUS, as it would
// without us: the JS thread's own access to a poisoned page through `buffer` is one).
// volatile, and fenced below: memcpy touches neither, so the compiler may otherwise drop the
// store before it as dead.
thread_local sigjmp_buf* volatile tlGuard = nullptr;
thread_local volatile uintptr_t tlFaultAddress = 0;
std::mutex gSigbusMutex;  // installs of the guard
// The handler the guard chains to, read by OnSigbus on any thread while another may install the
// guard again: an immutable copy published by pointer (release/acquire), never freed. A new copy
// is made only when the handler to chain to changes (one per distinct handler: bounded).
std::atomic<const struct sigaction*> gPreviousSigbus{nullptr};

void OnSigbus(int sig, siginfo_t* info, void* ucontext) {
  if (tlGuard != nullptr) {
    tlFaultAddress = reinterpret_cast<uintptr_t>(info->si_addr);
    siglongjmp(*tlGuard, 1);
  }
  const struct sigaction* previous = gPreviousSigbus.load(std::memory_order_acquire);
  if (previous != nullptr && (previous->sa_flags & SA_SIGINFO)) {
    previous->sa_sigaction(sig, info, ucontext);
    return;
  }
  if (previous != nullptr && previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
    previous->sa_handler(sig);
    return;
  }
  // Default action: uninstall and return; the faulting instruction runs again and the kernel
  // kills the process with SIGBUS (an ignored synchronous SIGBUS would loop forever).
  signal(SIGBUS, SIG_DFL);
  if (info->si_code <= 0) raise(SIGBUS);  // sent by kill(2), not by a fault: deliver it again
}

// Any thread. Installs the guard, or installs it again when someone replaced it: a JS
// process.on('SIGBUS') makes libuv install its own handler, which only records the signal and
// returns, so a poisoned page would fault again forever. The replaced handler becomes the
// one chained to for every SIGBUS outside a guarded copy (the JS listener still hears kill -BUS).
void InstallSigbusGuard() {
  struct sigaction current{};
  sigaction(SIGBUS, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSigbus) return;
  std::lock_guard<std::mutex> lock(gSigbusMutex);
  sigaction(SIGBUS, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSigbus) return;
  struct sigaction sa{};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  const struct sigaction* previous = gPreviousSigbus.load(std::memory_order_relaxed);
  bool same = previous != nullptr && previous->sa_flags == current.sa_flags &&
              (current.sa_flags & SA_SIGINFO ? previous->sa_sigaction == current.sa_sigaction
                                             : previous->sa_handler == current.sa_handler);
  if (!same) gPreviousSigbus.store(new struct sigaction(current), std::memory_order_release);
  sigaction(SIGBUS, &sa, nullptr);
}

// Thread-pool thread: memcpy that returns false (and where) instead of dying of SIGBUS.
bool GuardedCopy(void* to, const void* from, size_t length, uintptr_t* faultAddress) {
  InstallSigbusGuard();  // one sigaction(2) read when nothing replaced it
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    tlGuard = nullptr;
    *faultAddress = tlFaultAddress;
    return false;
  }
  tlGuard = &jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  memcpy(to, from, length);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tlGuard = nullptr;
  return true;
}

// A copy between a mapping and a JS buffer on a libuv thread-pool thread: the access may
// fault, and the thread then waits in the kernel until the fault is answered.
class AccessWorker : public Napi::AsyncWorker {
 public:
  AccessWorker(Napi::Env env, Mapping* mapping, uint8_t* memory, Napi::Uint8Array data, bool write)
      : Napi::AsyncWorker(env, "userfaultfd:region-access"),
        deferred_(Napi::Promise::Deferred::New(env)),
        mapping_(mapping),
        memory_(memory),
        bytes_(data.Data()),
        length_(data.ByteLength()),
        write_(write) {
    data_ = Napi::Persistent(data.As<Napi::Object>());
    mapping_->BeginAccess();
    BeginEnvAccess(env);
    // `data` may be a view of another Region: keep that one mapped until the copy is done.
    dataMapping_ = Mapping::AcquireContaining(bytes_, length_);
  }
  ~AccessWorker() override {
    EndEnvAccess(Env());
    mapping_->EndAccess();
    if (dataMapping_ != nullptr) dataMapping_->EndAccess();
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  // Thread-pool thread.
  void Execute() override {
    bool ok = write_ ? GuardedCopy(memory_, bytes_, length_, &faultAddress_)
                     : GuardedCopy(bytes_, memory_, length_, &faultAddress_);
    if (!ok) SetError("SIGBUS");
  }
  // JS thread. During environment teardown JS cannot run and settling throws: nobody is
  // left to see the promise, so that is ignored rather than let it end the process.
  void OnOK() override {
    try {
      deferred_.Resolve(write_ ? Env().Undefined() : data_.Value());
    } catch (const Napi::Error&) {
    }
  }
  // JS thread.
  void OnError(const Napi::Error&) override {
    Napi::Env env = Env();
    const char* syscall = write_ ? "write" : "read";
    char where[64];
    snprintf(where, sizeof where, "0x%llx",
             static_cast<unsigned long long>(faultAddress_ &
                                             ~static_cast<uintptr_t>(sysconf(_SC_PAGESIZE) - 1)));
    std::string message = std::string("SIGBUS: ") + syscall + " failed: Bus error (the page at " +
                          where + " is poisoned)";
    try {
      Napi::Error e = UffdErrorWithCode(env, "SIGBUS", 135, syscall, message);
      e.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(faultAddress_)));
      deferred_.Reject(e.Value());
    } catch (const Napi::Error&) {
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Mapping* mapping_;
  Mapping* dataMapping_ = nullptr;
  uint8_t* memory_;
  uint8_t* bytes_;
  size_t length_;
  bool write_;
  uintptr_t faultAddress_ = 0;
  Napi::ObjectReference data_;
};

// The buffer's own hold on the mapping. Node calls an external buffer's finalizer at most
// once, but also when it refuses the buffer (too large: ERR_BUFFER_TOO_LARGE), before the
// refusal returns, on some versions and not others. Whoever comes second (the finalizer or the
// refused creator) frees the hold; whoever comes first releases the mapping. node-addon-api's
// own finalizer wrapper freed its data twice there (test/reliability/large-regions.test.js).
struct BufferHold {
  Mapping* mapping;
  std::atomic<bool> released{false};
  std::atomic<int> parties{2};
  void ReleaseMapping() {
    if (!released.exchange(true)) mapping->Release();
  }
  void Leave() {
    if (parties.fetch_sub(1) == 1) delete this;
  }
};

void FinalizeBuffer(napi_env, void*, void* hint) {
  auto* hold = static_cast<BufferHold*>(hint);
  hold->ReleaseMapping();
  hold->Leave();
}

// JS thread: an external ArrayBuffer over the whole mapping, or a RangeError (code
// ERR_BUFFER_TOO_LARGE) when Node refuses it. lib/ checks the limit first, with a better
// message; this is the guard for a direct caller of the binding.
napi_value ExternalBuffer(Napi::Env env, Mapping* m) {
  m->AddRef();
  auto* hold = new BufferHold{m};
  napi_value value = nullptr;
  napi_status status =
      napi_create_external_arraybuffer(env, m->addr(), m->length(), FinalizeBuffer, hold, &value);
  if (status == napi_ok) {
    hold->Leave();
    return value;
  }
  hold->ReleaseMapping();
  hold->Leave();
  napi_value pending;
  napi_get_and_clear_last_exception(env, &pending);  // Node's own refusal, replaced by ours
  std::string message = "region.buffer: Node.js refused an external ArrayBuffer of " +
                        std::to_string(m->length()) +
                        " bytes (larger than buffer.constants.MAX_LENGTH); use region.read/write";
  Napi::RangeError e = Napi::RangeError::New(env, message);
  e.Set("code", "ERR_BUFFER_TOO_LARGE");
  throw e;
}

}  // namespace

Napi::Function Region::Init(Napi::Env env) {
  return DefineClass(env, "Region",
                     {
                         InstanceAccessor<&Region::Address>("address"),
                         InstanceAccessor<&Region::Length>("length"),
                         InstanceAccessor<&Region::Fd>("fd"),
                         InstanceAccessor<&Region::Released>("released"),
                         InstanceAccessor<&Region::Buffer>("buffer"),
                         InstanceMethod<&Region::Dontneed>("dontneed"),
                         InstanceMethod<&Region::Protect>("protect"),
                         InstanceMethod<&Region::Unmap>("unmap"),
                         InstanceMethod<&Region::Read>("read"),
                         InstanceMethod<&Region::Write>("write"),
                         InstanceMethod<&Region::ResidentPages>("residentPages"),
                     });
}

Region::Region(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Region>(info) {
  Napi::Env env = info.Env();
  InstallSigbusGuard();
  uint64_t length = ArgU64(info, 0);
  bool shared = ArgBool(info, 1), hugetlb = ArgBool(info, 2);
  int aliasFd = info.Length() > 3 ? ArgInt(info, 3) : -1;
  // A clone of a shared image: the memfd mapped privately (writes copy the page, the memfd
  // never changes). The mapping holds the file; no fd is kept.
  bool clone = info.Length() > 4 && ArgBool(info, 4);
  if (length == 0) ThrowRangeError(env, "length must be > 0");
  if (clone) {
    if (aliasFd < 0) ThrowRangeError(env, "a clone maps an image's fd");
    void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, aliasFd, 0);
    if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
    mapping_ = new Mapping(static_cast<uint8_t*>(addr), length, -1);
    Mapping::Track(mapping_);
    return;
  }

  int fd = -1;
  if (aliasFd >= 0) {
    fd = fcntl(aliasFd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) ThrowErrno(env, errno, "dup");
  } else if (shared) {
    fd = memfd_create("userfaultfd-region", MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0));
    if (fd < 0) ThrowErrno(env, errno, "memfd_create");
    if (ftruncate(fd, static_cast<off_t>(length)) != 0) {
      int err = errno;
      close(fd);
      ThrowErrno(env, err, "ftruncate");
    }
  }
  int flags = fd >= 0 ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS | (hugetlb ? MAP_HUGETLB : 0));
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    if (fd >= 0) close(fd);
    ThrowErrno(env, err, "mmap", kNoBytes,
               hugetlb && err == ENOMEM
                   ? "no free huge pages: reserve some with sysctl vm.nr_hugepages"
                   : nullptr);
  }
  mapping_ = new Mapping(static_cast<uint8_t*>(addr), length, fd);
  Mapping::Track(mapping_);
}

Region::~Region() {
  if (mapping_ != nullptr) mapping_->Release();
}

Mapping& Region::Live(Napi::Env env) {
  if (!mapping_->live()) ThrowRangeError(env, "The region is unmapped");
  return *mapping_;
}

void Region::CheckSpan(Napi::Env env, uint64_t offset, uint64_t length) {
  if (offset > mapping_->length() || length > mapping_->length() - offset) {
    ThrowRangeError(env, "outside the region");
  }
}

Napi::Value Region::Address(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), reinterpret_cast<uint64_t>(mapping_->addr()));
}

Napi::Value Region::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(mapping_->length()));
}

Napi::Value Region::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mapping_->fd());
}

Napi::Value Region::Released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), mapping_->released());
}

Napi::Value Region::Buffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!mapping_->live()) return Napi::ArrayBuffer::New(env, 0);  // what a detached view shows
  if (!buffer_.IsEmpty()) {
    Napi::ArrayBuffer existing = buffer_.Value();
    if (!existing.IsEmpty()) return existing;
  }
  napi_value value = ExternalBuffer(env, mapping_);
  Napi::ArrayBuffer ab(env, value);
  buffer_ = Napi::Weak(ab);
  return ab;
}

Napi::Value Region::Dontneed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping& m = Live(env);
  uint64_t offset = ArgU64(info, 0), length = ArgU64(info, 1);
  CheckSpan(env, offset, length);
  if (madvise(m.addr() + offset, length, MADV_DONTNEED) != 0) ThrowErrno(env, errno, "madvise");
  return env.Undefined();
}

Napi::Value Region::Protect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping& m = Live(env);
  uint64_t offset = ArgU64(info, 0), length = ArgU64(info, 1);
  CheckSpan(env, offset, length);
  int prot = ArgInt(info, 2);
  // A thread-pool copy in flight (or waiting on a fault) would die of SIGSEGV on the pages
  // taken away under it: refuse until the reads and writes have ended.
  if (prot != (PROT_READ | PROT_WRITE) && m.accessing()) {
    ThrowErrno(env, EBUSY, "mprotect", kNoBytes, "region.read/write in flight");
  }
  if (mprotect(m.addr() + offset, length, prot) != 0) ThrowErrno(env, errno, "mprotect");
  return env.Undefined();
}

Napi::Value Region::Unmap(const Napi::CallbackInfo& info) {
  if (!mapping_->live()) return info.Env().Undefined();
  if (!buffer_.IsEmpty()) {
    Napi::ArrayBuffer ab = buffer_.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    buffer_.Reset();
  }
  mapping_->RequestUnmap();
  return info.Env().Undefined();
}

// (offset, length) -> Promise<Buffer>
Napi::Value Region::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping& m = Live(env);
  uint64_t offset = ArgU64(info, 0), length = ArgU64(info, 1);
  CheckSpan(env, offset, length);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, length);
  auto* w = new AccessWorker(env, &m, m.addr() + offset, out, false);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// (offset, data: Uint8Array) -> Promise<void>
Napi::Value Region::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping& m = Live(env);
  uint64_t offset = ArgU64(info, 0);
  if (!info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "data must be a Uint8Array");
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  CheckSpan(env, offset, data.ByteLength());
  auto* w = new AccessWorker(env, &m, m.addr() + offset, data, true);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// The pages of the mapping that are in memory (mincore).
Napi::Value Region::ResidentPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping& m = Live(env);
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t pages = (m.length() + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  if (mincore(m.addr(), m.length(), vec.data()) != 0) ThrowErrno(env, errno, "mincore");
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return Napi::Number::New(env, static_cast<double>(resident));
}

}  // namespace uffd
