#include "sources/image_prefetcher.h"

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace uffd {

ImagePrefetcher::ImagePrefetcher(std::shared_ptr<SharedImage> image, std::vector<PageRun> runs)
    : image_(std::move(image)), runs_(std::move(runs)) {}

ImagePrefetcher::~ImagePrefetcher() { Stop(); }

int ImagePrefetcher::Start() {
  try {
    thread_ = std::thread([this] { Run(); });
    return 0;
  } catch (const std::system_error& e) {
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
}

void ImagePrefetcher::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

// Prefetch thread.
void ImagePrefetcher::Run() {
  const uint64_t page = image_->pageSize();
  const uint64_t batchPages = std::max<uint64_t>(1, kBatchBytes / page);
  for (const PageRun& r : runs_) {
    for (uint64_t done = 0; done < r.count;) {
      if (stop_.load(std::memory_order_acquire) || !image_->BelowCap()) {
        finished_.store(true, std::memory_order_release);
        return;
      }
      uint64_t n = std::min<uint64_t>(batchPages, r.count - done);
      int err = image_->Fill((r.first + done) * page, n * page, false, false, nullptr);
      if (err != 0) {
        // A source that fails here fails the faults that need the page, which say why.
        error_.store(err == SharedImage::kNeedsJs ? ENOTSUP : err, std::memory_order_relaxed);
        finished_.store(true, std::memory_order_release);
        return;
      }
      done += n;
      cursor_.fetch_add(n, std::memory_order_relaxed);
    }
  }
  finished_.store(true, std::memory_order_release);
}

}  // namespace uffd
