#include "reader/reader_claims.h"

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace uffd {

namespace {

struct Entry {
  std::atomic<uint32_t> claims{0};  // written under the mutex; read by watchers without it
  std::vector<std::pair<const void*, std::function<void()>>> watchers;
};

struct Registry {
  std::mutex mutex;
  std::map<uint64_t, Entry> entries;
};

// Never destroyed: a Worker may release its claim while the process runs its exit handlers.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

void Change(uint64_t inode, int delta) {
  if (inode == 0) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = delta > 0 ? r.entries.try_emplace(inode).first : r.entries.find(inode);
  if (it == r.entries.end() || (delta < 0 && it->second.claims.load() == 0)) return;
  Entry& e = it->second;
  e.claims.store(e.claims.load() + delta, std::memory_order_release);
  // Nudging only writes an eventfd: safe under the lock, and no watcher can go away meanwhile.
  for (auto& w : e.watchers) w.second();
  if (e.claims == 0 && e.watchers.empty()) r.entries.erase(it);
}

}  // namespace

uint64_t UffdInode(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

void ClaimReads(uint64_t inode) { Change(inode, 1); }

void ReleaseReads(uint64_t inode) { Change(inode, -1); }

// The entry stays (std::map nodes do not move) while it has a watcher.
const std::atomic<uint32_t>* WatchReadClaims(uint64_t inode, const void* token,
                                             std::function<void()> nudge) {
  if (inode == 0) return nullptr;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  Entry& e = r.entries[inode];
  e.watchers.emplace_back(token, std::move(nudge));
  return &e.claims;
}

void UnwatchReadClaims(uint64_t inode, const void* token) {
  if (inode == 0) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find(inode);
  if (it == r.entries.end()) return;
  auto& ws = it->second.watchers;
  for (size_t i = 0; i < ws.size(); i++) {
    if (ws[i].first == token) {
      ws.erase(ws.begin() + static_cast<long>(i));
      break;
    }
  }
  if (it->second.claims.load() == 0 && ws.empty()) r.entries.erase(it);
}

}  // namespace uffd
