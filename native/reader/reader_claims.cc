#include "reader/reader_claims.h"

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace uffd {

namespace {

struct Entry {
  uint32_t claims = 0;
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
  if (it == r.entries.end() || (delta < 0 && it->second.claims == 0)) return;
  Entry& e = it->second;
  e.claims += delta;
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

uint32_t ReadClaims(uint64_t inode) {
  if (inode == 0) return 0;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find(inode);
  return it == r.entries.end() ? 0 : it->second.claims;
}

void WatchReadClaims(uint64_t inode, const void* token, std::function<void()> nudge) {
  if (inode == 0) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.entries[inode].watchers.emplace_back(token, std::move(nudge));
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
  if (it->second.claims == 0 && ws.empty()) r.entries.erase(it);
}

}  // namespace uffd
