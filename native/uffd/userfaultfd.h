// The Userfaultfd object: one open userfaultfd, one C++ method per ioctl, its fault reader,
// its served ranges and its self-fault guard.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <memory>
#include <mutex>
#include <vector>

#include "reader/fault_reader.h"
#include "sources/page_source.h"
#include "sources/source_args.h"
#include "sources/sparse_source.h"
#include "sources/working_set.h"
#include "tracking/snapshot_writer.h"
#include "uffd/fast_ioctl.h"
#include "uffd/fault_stats.h"

namespace uffd {

// Module functions: opening and the API handshake. Policy (fallbacks, features) is in lib/.
Napi::Value OpenSyscall(const Napi::CallbackInfo& info);  // (userModeOnly) -> fd
Napi::Value OpenDevice(const Napi::CallbackInfo& info);   // (userModeOnly) -> fd
Napi::Value ApiHandshake(
    const Napi::CallbackInfo& info);                  // (fd, features) -> {api, features, ioctls}
Napi::Value CloseFd(const Napi::CallbackInfo& info);  // (fd)
Napi::Value GetTid(const Napi::CallbackInfo& info);   // gettid() of the calling JS thread
Napi::Value ExitNow(const Napi::CallbackInfo& info);  // (status): _exit(2), for a command's end

enum class SelfFaultPolicy : int32_t { kNone = 0, kZeropage = 1, kSigbus = 2, kSource = 3 };

class Userfaultfd : public Napi::ObjectWrap<Userfaultfd>, public FaultHandler {
 public:
  static Napi::Function Init(Napi::Env env);
  // JS: new Userfaultfd(fd, features): adopts an fd that has been through UFFDIO_API.
  explicit Userfaultfd(const Napi::CallbackInfo& info);
  ~Userfaultfd() override;

  // Reader thread.
  Disposition OnMessage(const uffd_msg& msg, Delivery* out) override;
  bool ShouldYield() override;
  Work Background(Delivery* out, bool* post) override;
  std::mutex* ReadLock() override;
  void OnRead(const uffd_msg* msgs, size_t count) override;

  // JS thread. Idempotent: close(), the finalizer, the env cleanup hook and the teardown
  // watch (addon.h) all end here.
  void Shutdown();

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Register(const Napi::CallbackInfo& info);
  Napi::Value Unregister(const Napi::CallbackInfo& info);
  Napi::Value CopyFromBuffer(const Napi::CallbackInfo& info);
  Napi::Value CopyFromAddress(const Napi::CallbackInfo& info);
  Napi::Value Zeropage(const Napi::CallbackInfo& info);
  Napi::Value Wake(const Napi::CallbackInfo& info);
  Napi::Value WriteProtect(const Napi::CallbackInfo& info);
  Napi::Value Continue(const Napi::CallbackInfo& info);
  Napi::Value Poison(const Napi::CallbackInfo& info);
  Napi::Value Move(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Noop(const Napi::CallbackInfo& info);
  Napi::Value FastMethods(const Napi::CallbackInfo& info);  // fast_ioctl.h
  Napi::Value StartReader(const Napi::CallbackInfo& info);
  Napi::Value RefReader(const Napi::CallbackInfo& info);
  Napi::Value UnrefReader(const Napi::CallbackInfo& info);
  Napi::Value SetSelfFaultPolicy(const Napi::CallbackInfo& info);
  Napi::Value ClaimReadsMethod(const Napi::CallbackInfo& info);
  void ClaimReadsOnce();  // JS thread
  Napi::Value SetJsReads(const Napi::CallbackInfo& info);
  // JS thread: lets the JS thread read the uffd itself (fault_reader.h SetDirect) exactly when
  // only JavaScript answers its faults and nothing waits on the reader thread; called whenever
  // one of those conditions may have changed.
  void UpdateDirect(Napi::Env env);
  Napi::Value Serve(const Napi::CallbackInfo& info);
  Napi::Value ServeImage(const Napi::CallbackInfo& info);
  Napi::Value Unserve(const Napi::CallbackInfo& info);
  Napi::Value StartFill(const Napi::CallbackInfo& info);
  Napi::Value AnswerServed(const Napi::CallbackInfo& info);
  Napi::Value SetOrdered(const Napi::CallbackInfo& info);
  // JS thread: the (optional) trailing `seen` of copy()/zeropage(): with ordered answers, the
  // ioctl runs only if JS has seen every layout event read, else EAGAIN as the kernel's own.
  bool OrderedAndBehind(const Napi::CallbackInfo& info, size_t seenArg);
  Napi::Value AdoptFork(const Napi::CallbackInfo& info);
  Napi::Value DropFork(const Napi::CallbackInfo& info);
  ServedRanges::RangeList TakeFork(int childFd);                // JS thread
  std::shared_ptr<PageSource> SharedSource(uint32_t sourceId);  // JS thread
  static std::vector<SparseRun> SparseRuns(Napi::Value value);  // JS thread
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value ReadSync(const Napi::CallbackInfo& info);  // sync_reader.h
  bool RemoveServed(uint32_t id);                        // JS thread
  Napi::Value Recorded(const Napi::CallbackInfo& info);
  Napi::Value Installed(const Napi::CallbackInfo& info);
  // JS thread: the working set of a range just served (record, prefetch, prefetchOptions: args
  // 8, 9 and 11). readerSource: the range's (the reader's) source; prefetchSource: the prefetch
  // thread's own.
  void AddWorkingSet(const Napi::CallbackInfo& info, uint32_t id, uint64_t start, uint64_t length,
                     std::shared_ptr<PageSource> readerSource,
                     std::shared_ptr<PageSource> prefetchSource, int adviseFd, uint64_t fileOffset);
  static int PagesFd(const Napi::CallbackInfo& info);
  static bool LoadsLater(const Napi::CallbackInfo& info);
  static bool LoadLater(Napi::Env env, Napi::Object prefetchOptions, SetSetup* setup);
  Napi::Value Snapshot(const Napi::CallbackInfo& info);
  Napi::Value SnapshotEnd(const Napi::CallbackInfo& info);

  int CheckedFd(Napi::Env env, const char* syscall);         // throws on a closed uffd
  void AnswerSelfFault(const uffd_msg& msg, Delivery* out);  // reader thread
  int ZeroFill(uint64_t address);                            // reader thread

  int fd_ = -1;
  uint64_t features_ = 0;
  uint64_t pageSize_;
  FaultReader* reader_ = nullptr;  // deletes itself after Stop()
  bool jsReads_ = true;            // JS thread: setJsReads (the benchmarks' switch)
  size_t servedCount_ = 0;         // JS thread: ranges served (served_)
  pid_t jsTid_ = 0;
  bool localMemory_ = false;  // this process's memory: the only faults the guard may answer
  uint64_t localClaim_ = 0;   // ClaimLocalUffd's, released at Shutdown
  uint64_t inode_ = 0;        // reader_claims.h: this uffd's entry
  // Its claim count (WatchReadClaims), set before the reader starts, cleared after it is joined.
  const std::atomic<uint32_t>* claims_ = nullptr;
  std::atomic<bool> consumer_{
      false};  // this object claims the uffd's messages; released at Shutdown
  std::atomic<int32_t> selfFaultPolicy_{static_cast<int32_t>(SelfFaultPolicy::kZeropage)};
  FaultStats stats_;
  std::shared_ptr<FastTarget> fast_;  // fast_ioctl.h: cleared at Shutdown
  ServedRanges served_;
  // A served memory source's JS buffer, held from GC while the reader copies from it, and the
  // Region it views, whose unmap() waits until EndAccess.
  struct KeepAlive {
    uint32_t id;  // the served range's
    Napi::Reference<Napi::Value> buffer;
    class Mapping* mapping;  // null: not a view of a Region
  };
  static void ReleaseKeepAlive(KeepAlive& k);  // JS thread, once the source is gone
  std::vector<KeepAlive> keepAlive_;
  static void OnEnvCleanup(void* self);  // JS thread, at environment teardown
  napi_env env_;
  bool hookInstalled_ = false;
  bool tracked_ = false;     // in AddonData::uffds
  WorkingSets workingSets_;  // recording and prefetch (working_set.h); after served_: joined first
  // Live snapshots in progress (native/tracking/snapshot_writer.h): the reader hands them WP
  // faults.
  std::mutex snapshotsMutex_;
  std::vector<std::shared_ptr<SnapshotWriter>> snapshots_;
  // Ordered answers (setOrdered): layout events (FORK, REMAP, REMOVE, UNMAP) read so far, and
  // the lock that orders the reader's read(2) with JS's ioctls.
  std::atomic<bool> ordered_{false};
  std::mutex orderMutex_;
  uint64_t layoutRead_ = 0;  // reader thread; under orderMutex_ when ordered
  // Following ranges copied at FORK messages, by the child's fd, until JS adopts or drops them.
  // The reader adds to it on a FORK event, so its memory is mapped (mapped_allocator.h), and the
  // JS thread frees nothing under forksMutex_.
  using ForkList = MappedStdVector<std::pair<int, ServedRanges::RangeList>>;
  std::mutex forksMutex_;
  ForkList forks_;
  // File sources served, by their JS PageSource's id (Serve's sourceId). JS thread.
  std::vector<std::pair<uint32_t, std::weak_ptr<PageSource>>> sharedSources_;
  bool SaveBeforeWrite(uint64_t address);  // reader thread
};

}  // namespace uffd
