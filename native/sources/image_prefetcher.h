// A thread that fills a loaded working set into a shared image before any clone asks for it:
// the runs in the recorded order, in batches, each through SharedImage::Fill, which skips what
// a clone's fault filled first and takes the same lock (a fault waits for one batch at most).
// Clones are never touched: it only writes the memfd. It stops at the image's cap.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "sources/shared_image.h"
#include "sources/working_set.h"

namespace uffd {

class ImagePrefetcher {
 public:
  static constexpr uint64_t kBatchBytes = 512 << 10;  // per Fill: the lock is released between

  // JS thread. `runs` are page indexes of the image (checked in lib/).
  ImagePrefetcher(std::shared_ptr<SharedImage> image, std::vector<PageRun> runs);
  ~ImagePrefetcher();  // Stop()
  ImagePrefetcher(const ImagePrefetcher&) = delete;
  ImagePrefetcher& operator=(const ImagePrefetcher&) = delete;

  int Start();  // JS thread: 0, or the errno of creating the thread
  void Stop();  // JS thread: idempotent; joins the thread
  // Any thread: pages of the set gone past, in set order; the errno that stopped it, or 0.
  uint64_t cursor() const { return cursor_.load(std::memory_order_relaxed); }
  int error() const { return error_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  void Run();  // prefetch thread

  std::shared_ptr<SharedImage> image_;
  std::vector<PageRun> runs_;
  std::atomic<bool> stop_{false}, finished_{false};
  std::atomic<uint64_t> cursor_{0};
  std::atomic<int> error_{0};
  std::thread thread_;
};

}  // namespace uffd
