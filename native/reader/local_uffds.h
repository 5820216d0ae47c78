// Which userfaultfds serve this process's own memory.
//
// Only for those can a fault come from one of this process's threads, so only for those may the
// self-fault guard compare a fault's tid with the JS thread's: a tid is local to the faulting
// thread's pid namespace, and a peer in another namespace (a container, Firecracker's jailer)
// reports tids that can equal ours. Only for those, too, can mincore(2) here see the pages.
//
// A uffd's file has an inode of its own (anon_inode_create_getfd, Linux 5.12+), so a uffd is
// recognised whatever fd number reaches it: Userfaultfd.fromFd in a Worker of a uffd the main
// thread opened is local; a uffd received from another process, or a fork child's, is not.
// (Before 5.12 every anonymous-inode file shares one inode: a received uffd then counts as local
// while a local one is open, the guard's behaviour before this registry.)
#pragma once
#include <cstdint>

namespace uffd {

// Any JS thread (the registry is process-wide; Workers share it). `inode`: the uffd's
// (reader_claims.h UffdInode). `opened`: this process created the uffd for its own memory.
// Returns the claim (0: not local) to pass to Release.
uint64_t ClaimLocalUffd(uint64_t inode, bool opened);

// Any JS thread, once per non-zero claim.
void ReleaseLocalUffd(uint64_t claim);

}  // namespace uffd
