'use strict';
// The destination side of examples/postcopy: which pages are in, and placing the frames that
// bring them (UFFDIO_COPY).

/** UFFDIO_COPY of a run; pages already present (EEXIST) count as done. Returns pages placed. */
function placeRun(uffd, start, firstPage, data) {
  const page = uffd.pageSize;
  let placed = 0;
  let off = 0;
  let retries = 0;
  while (off < data.length) {
    try {
      const n = uffd.copy(start + BigInt(firstPage * page + off), data.subarray(off));
      placed += n;
      off += n;
    } catch (e) {
      if (e.code === 'EAGAIN' && e.bytes > 0) {
        placed += e.bytes; // partial: what stopped it shows on the next copy
        off += e.bytes;
      } else if (e.code === 'EEXIST') {
        off += page; // already there: done
      } else if (e.code === 'EAGAIN' && ++retries < 1000) {
        // a non-cooperative event is queued (none is enabled here): try again
      } else {
        throw e;
      }
    }
  }
  return placed / page;
}

/**
 * The pages of a registered region at `start` (`pages` of uffd.pageSize), as frames bring them
 * from the two channels. `allIn` resolves once every page is in (or the migration is abandoned).
 *
 * A frame may come after every page is in: a demand request's answer that the background pass
 * overtook (both channels send a page the other may have sent). Such a frame is counted and
 * dropped, never placed: once every page is in, the workload checksums the region and unmaps
 * it, and a UFFDIO_COPY into the unmapped range fails with ENOENT (the kernel finds no
 * registered VMA there), which is what ended the example under load.
 */
class Placement {
  constructor(uffd, start, pages) {
    this.uffd = uffd;
    this.start = start;
    this.pages = pages;
    this.present = new Uint8Array(pages); // 1: placed here, or answered already
    this.inCount = 0;
    this.counts = { demandPages: 0, backgroundPages: 0, alreadyThere: 0 };
    this.done = false;
    this.allIn = new Promise((resolve) => { this.resolveAllIn = resolve; });
  }

  /** A frame of `count` pages from `first`: `demand` says which channel brought it. */
  frame(demand, first, count, data) {
    if (this.done) {
      this.counts.alreadyThere += count;
      return;
    }
    const placed = placeRun(this.uffd, this.start, first, data);
    if (demand) this.counts.demandPages += placed;
    else this.counts.backgroundPages += placed;
    this.counts.alreadyThere += count - placed;
    for (let p = first; p < first + count; p++) {
      if (!this.present[p]) {
        this.present[p] = 1;
        this.inCount++;
      }
    }
    if (this.inCount === this.pages) this.finish();
  }

  /** Nothing more is placed: every page is in, or the source hung up (the caller closes the uffd). */
  finish() {
    this.done = true;
    this.resolveAllIn();
  }
}

module.exports = { Placement, placeRun };
