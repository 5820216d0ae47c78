// The check of a working set's compact page file (`<set>.pages`), run on the prefetch thread
// once the set is loaded (background mode), so that serve() returns at once (issue 23: the
// first byte as lazy's). The format is lib/sources/set-pages.ts's: its header() documents the
// layout and writes the files, its PagesReason numbers the refusals (mirrored here). A refusal
// is described, not thrown: lib/ turns it into the coded error checkSetPages throws.
#pragma once
#include <cstdint>
#include <vector>

#include "sources/set_file.h"

namespace uffd {

// The file a page file must have been cut from: the range's source, open, as it is now.
struct PagesSource {
  int fd = -1;
  uint64_t offset = 0;
};

// Prefetch thread. Whether the page file open at `pagesFd` holds the pages of the set (its
// `runs`, and the checksum its file ends with) as the source holds them now, in pages of
// `pageSize`; false with *failure filled in (kind kPages; reason: PagesReason, a, b).
bool CheckSetPages(int pagesFd, const PagesSource& source, uint64_t pageSize,
                   const std::vector<PageRun>& runs, uint32_t setChecksum, SetLoadFailure* failure);

// Prefetch thread. Fills *failure for a page file that passed the check but could not be
// opened for reading (errno `err`): the same refusal as a failed read in CheckSetPages.
void RefusePages(SetLoadFailure* failure, int err);

}  // namespace uffd
