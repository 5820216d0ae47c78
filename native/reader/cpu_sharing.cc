#include "reader/cpu_sharing.h"

#include <sched.h>
#include <sys/resource.h>

#include "uffd/clock.h"

namespace uffd {

void CpuSharing::LeaveIfShared() {
  rusage usage;
  if (getrusage(RUSAGE_THREAD, &usage) != 0) return;
  long preemptions = usage.ru_nivcsw;  // preempted, or a sched_yield() that let another run
  bool preempted = preemptions_ >= 0 && preemptions != preemptions_;
  preemptions_ = preemptions;
  if (!preempted) return;
  uint64_t now = MonotonicNs();
  if (lastMoveNs_ != 0 && now - lastMoveNs_ < kMinGapNs) return;
  cpu_set_t allowed;
  int cpu = sched_getcpu();
  if (cpu < 0 || sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  if (CPU_COUNT(&allowed) < 2 || !CPU_ISSET(cpu, &allowed)) return;
  cpu_set_t others = allowed;
  CPU_CLR(cpu, &others);
  // The first call moves the thread off `cpu` at once; the second gives the mask back, which
  // moves nothing.
  if (sched_setaffinity(0, sizeof others, &others) != 0) return;
  sched_setaffinity(0, sizeof allowed, &allowed);
  lastMoveNs_ = now;
}

}  // namespace uffd
