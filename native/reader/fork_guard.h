// Forks and uffd closes, kept apart.
//
// With EVENT_FORK, a thread that forks waits inside clone(2) until every uffd registered in
// this process has its FORK event read. The child being made already holds a copy of this
// process's fd table, so a uffd whose fd is closed meanwhile is not released: its event is
// queued all the same, and with its reader stopped and its fd gone, nobody ever reads it. The
// fork, and the thread that made it, wait forever.
//
// So closing a uffd (Userfaultfd::Shutdown, from stopping its reader to closing its fd) takes
// the guard exclusively, and every fork takes it shared, from a pthread_atfork prepare handler
// (before glibc takes malloc's locks) until its parent handler: a close waits for the forks in
// flight (its reader still reads their events), and a fork waits for a close in progress.
// Forks made without the atfork handlers (vfork, posix_spawn, clone with CLONE_VM) copy no
// memory and raise no FORK event.
#pragma once

namespace uffd {

// Any thread; once per process (later calls do nothing).
void InstallForkGuard();

// Held while a uffd's reader is stopped and its fd closed. JS thread; nothing that waits on
// another thread's fork may happen while it is held.
class ForkExclusion {
 public:
  ForkExclusion();
  ~ForkExclusion();
  ForkExclusion(const ForkExclusion&) = delete;
  ForkExclusion& operator=(const ForkExclusion&) = delete;
};

}  // namespace uffd
