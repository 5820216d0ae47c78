#include "tracking/snapshot_writer.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "uffd/errors.h"
#include "uffd/uffd_ioctl.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace uffd {

namespace {

// ThreadSanitizer builds (scripts/sanitize.sh thread): the accesses of this thread are not
// checked while one of these lives. Nothing otherwise.
struct TsanIgnore {
#if defined(__SANITIZE_THREAD__)
  TsanIgnore() { __tsan_ignore_thread_begin(); }
  ~TsanIgnore() { __tsan_ignore_thread_end(); }
#endif
};

constexpr uint64_t kChunkBytes = 1u << 20;  // pages claimed and written per step of the stream

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace

struct SnapshotWriter::Done {
  int err;
  const char* syscall;
  uint64_t bytes, savedBeforeWrite, p50, p99;
};

SnapshotWriter::SnapshotWriter(const Options& o)
    : uffd_(o.uffd),
      start_(o.start),
      length_(o.length),
      pageSize_(o.pageSize),
      pages_(o.length / o.pageSize),
      dest_(o.dest),
      destOffset_(o.destOffset),
      populate_(o.populate),
      state_(new std::atomic<uint8_t>[o.length / o.pageSize]),
      readerBounce_(new uint8_t[o.pageSize]) {
  for (uint64_t i = 0; i < pages_; i++) state_[i].store(kUnsaved, std::memory_order_relaxed);
}

SnapshotWriter::~SnapshotWriter() {
  Join();
  if (dest_ >= 0) close(dest_);
}

int SnapshotWriter::Start(Napi::Env env, Napi::Function onDone) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, onDone, "userfaultfd-snapshot", 0, 1);
  try {
    thread_ = std::thread([this] { Run(); });
    return 0;
  } catch (const std::system_error& e) {
    tsfn_.Release();
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
}

void SnapshotWriter::Cancel() {
  std::lock_guard<std::mutex> lock(fdMutex_);
  cancelled_ = true;
}

void SnapshotWriter::Join() {
  if (thread_.joinable()) thread_.join();
}

void SnapshotWriter::Fail(int err, const char* syscall) {
  int none = 0;
  if (error_.compare_exchange_strong(none, err)) errorCall_.store(syscall);
}

int SnapshotWriter::Protect(uint64_t first, uint64_t count, bool protect) {
  std::lock_guard<std::mutex> lock(fdMutex_);
  if (cancelled_) return ECANCELED;
  return WriteProtect(uffd_, start_ + first * pageSize_, count * pageSize_,
                      protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
}

int SnapshotWriter::WriteAll(const uint8_t* data, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = pwrite(dest_, data, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// Pages [first, first + count) are claimed (kSaving) and still write-protected: their bytes are
// the image's. pwrite(2) straight from the memory; a kernel-mode read that the uffd refuses
// (EFAULT: a user-mode-only uffd and a page not present) goes through `bounce`, copied in user
// mode, page by page.
int SnapshotWriter::SaveRun(uint64_t first, uint64_t count, uint8_t* bounce) {
  // Under ThreadSanitizer: these reads of the range race, as TSan sees it, with the program's
  // writes to it; what orders them is the kernel's write protection (a writer to a claimed page
  // waits in the kernel until the page is saved and un-protected), which TSan cannot see.
  [[maybe_unused]] TsanIgnore ignore;
  const uint8_t* src = reinterpret_cast<const uint8_t*>(start_ + first * pageSize_);
  uint64_t offset = destOffset_ + first * pageSize_;
  int err = WriteAll(src, count * pageSize_, offset);
  if (err != EFAULT) return err;
  for (uint64_t i = 0; i < count; i++) {
    memcpy(bounce, src + i * pageSize_, pageSize_);
    err = WriteAll(bounce, pageSize_, offset + i * pageSize_);
    if (err != 0) return err;
  }
  return 0;
}

// Reader thread.
void SnapshotWriter::OnWriteFault(uint64_t address) {
  uint64_t t0 = NowNs();
  // Waits for the protecting walk to finish (see protectMutex_).
  protectMutex_.lock();
  protectMutex_.unlock();
  uint64_t page = (address - start_) / pageSize_;
  uint8_t s = kUnsaved;
  if (state_[page].compare_exchange_strong(s, kSaving, std::memory_order_acq_rel)) {
    int err = SaveRun(page, 1, readerBounce_.get());
    if (err != 0) Fail(err, "write");
    state_[page].store(kSaved, std::memory_order_release);
    savedBeforeWrite_.fetch_add(1, std::memory_order_relaxed);
  } else if (s == kSaving) {
    return;  // the stream is writing it, and un-protects it (waking this writer) when done
  }
  int err = Protect(page, 1, false);
  if (err != 0 && err != ECANCELED) Fail(err, "UFFDIO_WRITEPROTECT");
  stats_.RecordLatency(NowNs() - t0);
}

// Writer thread. Without WP_UNPOPULATED, protecting an anonymous page that was never touched
// leaves no mark, and a write there would go unseen: every page is mapped first (reading maps
// the shared zero page, no memory). MADV_POPULATE_READ does it in one call (5.14+); where the
// kernel refuses (older kernels; EFAULT for a user-mode-only uffd on a missing page), a read
// of each page from this thread does it.
int SnapshotWriter::Populate() {
  if (madvise(reinterpret_cast<void*>(start_), length_, MADV_POPULATE_READ) == 0) return 0;
  if (errno != EINVAL && errno != EFAULT && errno != ENOSYS) return errno;
  for (uint64_t i = 0; i < pages_; i++) {
    volatile const uint8_t* p = reinterpret_cast<const uint8_t*>(start_ + i * pageSize_);
    (void)*p;
  }
  return 0;
}

// Writer thread: claims the pages not saved yet, chunk by chunk, writes each run of them and
// un-protects it.
int SnapshotWriter::Stream() {
  uint64_t chunk = kChunkBytes / pageSize_ > 0 ? kChunkBytes / pageSize_ : 1;
  std::unique_ptr<uint8_t[]> bounce(new uint8_t[pageSize_]);
  for (uint64_t base = 0; base < pages_; base += chunk) {
    if (error_.load(std::memory_order_relaxed) != 0) return 0;
    uint64_t end = base + chunk < pages_ ? base + chunk : pages_;
    uint64_t run = base, count = 0;
    for (uint64_t p = base; p <= end; p++) {
      uint8_t s = kUnsaved;
      bool claimed =
          p < end && state_[p].compare_exchange_strong(s, kSaving, std::memory_order_acq_rel);
      if (claimed) {
        if (count++ == 0) run = p;
        continue;
      }
      if (count == 0) continue;
      int err = SaveRun(run, count, bounce.get());
      if (err != 0) return Fail(err, "write"), 0;
      for (uint64_t i = run; i < run + count; i++)
        state_[i].store(kSaved, std::memory_order_release);
      err = Protect(run, count, false);
      // ECANCELED: the uffd is closing; the image is incomplete and the promise says so.
      if (err != 0) return Fail(err, err == ECANCELED ? "snapshot" : "UFFDIO_WRITEPROTECT"), 0;
      count = 0;
    }
  }
  return 0;
}

// Writer thread.
void SnapshotWriter::Run() {
  if (populate_) {
    int err = Populate();
    if (err != 0) Fail(err, "madvise");
  }
  if (error_.load() == 0) {
    std::lock_guard<std::mutex> walk(protectMutex_);
    int err = Protect(0, pages_, true);
    if (err != 0) Fail(err, err == ECANCELED ? "snapshot" : "UFFDIO_WRITEPROTECT");
  }
  if (error_.load() == 0) Stream();
  if (error_.load() != 0) {
    // The range is left as it was found: nothing of it stays protected.
    Protect(0, pages_, false);
  } else {
    int err = fdatasync(dest_);
    if (err != 0 && errno != EINVAL && errno != EROFS) Fail(errno, "fdatasync");
  }
  auto* done =
      new Done{error_.load(),          errorCall_.load(),      length_, savedBeforeWrite_.load(),
               stats_.Percentile(0.5), stats_.Percentile(0.99)};
  napi_status st = tsfn_.BlockingCall(done, [](Napi::Env env, Napi::Function fn, Done* d) {
    if (env != nullptr) {
      if (d->err != 0) {
        fn.Call({UffdError(env, d->err, d->syscall == nullptr ? "snapshot" : d->syscall).Value()});
      } else {
        Napi::Object r = Napi::Object::New(env);
        r.Set("bytes", Napi::Number::New(env, static_cast<double>(d->bytes)));
        r.Set("savedBeforeWrite", Napi::Number::New(env, static_cast<double>(d->savedBeforeWrite)));
        r.Set("p50", Napi::Number::New(env, static_cast<double>(d->p50)));
        r.Set("p99", Napi::Number::New(env, static_cast<double>(d->p99)));
        fn.Call({env.Null(), r});
      }
    }
    delete d;
  });
  if (st != napi_ok) delete done;
  tsfn_.Release();
}

}  // namespace uffd
