// Which userfaultfds a consumer in this process reads.
//
// Each message of a uffd goes to whichever reader read(2)s it first. A uffd opened with a
// non-cooperative feature (EVENT_REMOVE, ...) runs a reader from open() only so that those
// events never block their callers; faults it reads wait for a consumer of that same object.
// When the consumer is elsewhere (a Userfaultfd.fromFd duplicate with a listener, a Worker that
// readSync()s it) that reader would take its faults: so it steps aside while a consumer claims
// the uffd, and resumes when the last claim is released. Keyed by the uffd's inode, so that any
// fd number, in any thread, reaches the same entry.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace uffd {

// The inode of a uffd's file, 0 if fstat(2) fails.
uint64_t UffdInode(int fd);

// Any JS thread. A consumer reads the uffd `inode`: readers that watch it are nudged.
void ClaimReads(uint64_t inode);
void ReleaseReads(uint64_t inode);

// JS thread. `nudge` (callable from any thread) runs whenever the claims on `inode` change, until
// Unwatch with the same `token`. Returns the number of claims on `inode`, to be read with
// acquire (from any thread, the reader's included) until then; null if inode is 0. The reader
// reads it without taking the registry's mutex: a JS thread holds that mutex while it allocates
// (a new entry, a watcher), and the reader must not wait on a thread that can wait on malloc
// (mapped_vector.h).
const std::atomic<uint32_t>* WatchReadClaims(uint64_t inode, const void* token,
                                             std::function<void()> nudge);
void UnwatchReadClaims(uint64_t inode, const void* token);

}  // namespace uffd
