#include "reader/local_uffds.h"

#include <map>
#include <mutex>

namespace uffd {

namespace {

struct Registry {
  std::mutex mutex;
  std::map<uint64_t, uint32_t> claims;  // inode -> Userfaultfd objects holding it
};

// Never destroyed: a Worker may release its claim while the process runs its exit handlers.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

}  // namespace

uint64_t ClaimLocalUffd(uint64_t inode, bool opened) {
  if (inode == 0) return 0;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.claims.find(inode);
  if (it == r.claims.end()) {
    if (!opened) return 0;
    it = r.claims.emplace(inode, 0).first;
  }
  it->second++;
  return inode;
}

void ReleaseLocalUffd(uint64_t claim) {
  if (claim == 0) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.claims.find(claim);
  if (it != r.claims.end() && --it->second == 0) r.claims.erase(it);
}

}  // namespace uffd
