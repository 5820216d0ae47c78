// Whether the reader thread shares its CPU with a thread it keeps waking, and leaving that CPU
// when it does. Used while the reader fills served ranges in the background.
//
// A thread woken by the reader's UFFDIO_COPY is woken on the CPU it last ran on. Once that is
// the reader's CPU (the program faulted while the reader ran there), it stays so: each copy wakes
// it there, it preempts the reader, runs until its next missing page, and the reader goes on.
// The two take turns on one CPU while another idles, and the load balancer leaves them (each ran
// within the last half millisecond: "cache hot"). In a CRIU restore that reads its memory in
// order, that lasted 18-26 ms of 50-60 (docs/criu.md, "Performance"). Leaving the CPU after being
// preempted usually ends it: the program's next wake-ups find its own CPU idle. Not always: in
// one of three traced restores the reader did not leave (not explained), and a program woken onto
// the reader's new CPU (its own busy) sends it off again, kMinGapNs later at the earliest.
#pragma once
#include <cstdint>

namespace uffd {

class CpuSharing {
 public:
  // Reader thread. Moves the calling thread to another CPU of its affinity mask when it was
  // preempted since the last call (at most once per kMinGapNs); the mask is left as it was. A
  // thread allowed only one CPU stays. No allocation: the reader's rule (mapped_vector.h). An
  // affinity change made from outside (taskset -p) in the microseconds between its two
  // sched_setaffinity calls is undone for this thread.
  void LeaveIfShared();
  // Reader thread: the background work is done; the next LeaveIfShared() only takes note.
  void Reset() { preemptions_ = -1; }

  // Moves are at least this far apart: a preemption by anything else (a kernel worker, another
  // thread of this process) must not make the reader wander.
  static constexpr uint64_t kMinGapNs = 2'000'000;

 private:
  long preemptions_ = -1;  // the thread's involuntary switches at the last call; -1: none yet
  uint64_t lastMoveNs_ = 0;
};

}  // namespace uffd
