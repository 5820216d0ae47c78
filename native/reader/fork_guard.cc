#include "reader/fork_guard.h"

#include <pthread.h>

#include <mutex>

namespace uffd {

namespace {

// Shared by forks, exclusive for closes. Never destroyed: forks happen until the process ends.
pthread_rwlock_t gGuard = PTHREAD_RWLOCK_INITIALIZER;

void Prepare() { pthread_rwlock_rdlock(&gGuard); }
void Parent() { pthread_rwlock_unlock(&gGuard); }
// The child has one thread, the one that forked: the holds of the parent's other threads (other
// forks in flight) were copied but have nobody to release them. A fresh lock.
void Child() { pthread_rwlock_init(&gGuard, nullptr); }

}  // namespace

void InstallForkGuard() {
  static std::once_flag once;
  // The handlers stay registered for the life of the process: the addon is never unloaded
  // (addon.cc PinAddon), so their code stays mapped.
  std::call_once(once, [] { pthread_atfork(Prepare, Parent, Child); });
}

ForkExclusion::ForkExclusion() { pthread_rwlock_wrlock(&gGuard); }

ForkExclusion::~ForkExclusion() { pthread_rwlock_unlock(&gGuard); }

}  // namespace uffd
