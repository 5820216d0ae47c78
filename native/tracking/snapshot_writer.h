// Live snapshot: a point-in-time image of a write-protected range, streamed to a file on a
// thread of its own while other threads keep writing. A write to a page not yet saved raises a
// synchronous WP fault; the fault reader hands it here, the page is saved first and then
// un-protected (copy-before-write), with no JavaScript per fault.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "uffd/fault_stats.h"

namespace uffd {

class SnapshotWriter {
 public:
  struct Options {
    int uffd;  // the userfaultfd that registered the range for WP
    uint64_t start, length, pageSize;
    int dest;             // owned: closed by the writer
    uint64_t destOffset;  // where the image starts in dest
    bool populate;        // map every page before protecting (no WP_UNPOPULATED markers)
  };
  explicit SnapshotWriter(const Options& o);
  ~SnapshotWriter();  // joins the thread

  // JS thread: starts the writer thread; `onDone(err, result)` is called on the JS thread at
  // the end. Returns 0 or the errno of pthread_create.
  int Start(Napi::Env env, Napi::Function onDone);
  // JS thread: no ioctl on the uffd after this returns (it is about to be closed); the thread
  // ends soon after, once closing the uffd has released any fault it waits on. Then Join().
  void Cancel();
  void Join();

  bool Contains(uint64_t address) const { return address - start_ < length_; }
  // Reader thread: a write fault at `address`. Saves the page if the stream has not, then
  // un-protects it (which wakes the writer).
  void OnWriteFault(uint64_t address);

 private:
  enum : uint8_t { kUnsaved = 0, kSaving = 1, kSaved = 2 };
  struct Done;

  void Run();                                                    // writer thread
  int Populate();                                                // writer thread
  int Stream();                                                  // writer thread
  int SaveRun(uint64_t first, uint64_t count, uint8_t* bounce);  // any thread
  int WriteAll(const uint8_t* data, uint64_t len, uint64_t offset);
  // The uffd ioctls, refused once cancelled: the fd number may be reused after close.
  int Protect(uint64_t first, uint64_t count, bool protect);
  void Fail(int err, const char* syscall);

  int uffd_;
  uint64_t start_, length_, pageSize_, pages_;
  int dest_;
  uint64_t destOffset_;
  bool populate_;
  std::unique_ptr<std::atomic<uint8_t>[]> state_;
  std::unique_ptr<uint8_t[]>
      readerBounce_;  // one page: the reader thread's copy, no allocation per fault
  std::atomic<uint64_t> savedBeforeWrite_{0};
  std::atomic<int> error_{0};
  std::atomic<const char*> errorCall_{nullptr};
  FaultStats stats_;  // WP-fault handling latency
  // Held by the writer thread for the whole protecting walk; the reader takes it before
  // releasing any page. UFFDIO_WRITEPROTECT protects page after page: a writer held on a page
  // already protected, if released before the walk ends, could go on to write a page the walk
  // has not reached, and the image would have the later write without the earlier one.
  std::mutex protectMutex_;
  std::mutex fdMutex_;
  bool cancelled_ = false;  // under fdMutex_
  std::thread thread_;
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace uffd
