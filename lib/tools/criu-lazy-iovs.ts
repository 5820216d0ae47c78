/**
 * The pages of a restored task still to be served, as criu lazy-pages keeps them (criu/uffd.c
 * "lazy_iov"): runs of addresses, each with the address its first page had at the dump (where
 * its bytes are in the images). Faults and pushes take pages out; munmap and MADV_DONTNEED drop
 * them; mremap moves them; a fork copies them. Addresses are numbers: user-space addresses of
 * x86-64 and arm64 are below 2^53.
 */

export interface Iov {
  start: number;
  end: number;
  /** The address of `start` at the dump. */
  imgStart: number;
}

export class LazyIovs {
  /** Sorted by start, disjoint. */
  private iovs: Iov[];

  constructor(iovs: Iov[] = []) {
    this.iovs = iovs.map((x) => ({ ...x })).sort((a, b) => a.start - b.start);
  }

  get empty(): boolean {
    return this.iovs.length === 0;
  }

  bytes(): number {
    return this.iovs.reduce((n, x) => n + x.end - x.start, 0);
  }

  /** The run holding `address`. */
  find(address: number): Iov | undefined {
    let lo = 0;
    let hi = this.iovs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.iovs[mid].end <= address) lo = mid + 1;
      else hi = mid;
    }
    const x = this.iovs[lo];
    return x !== undefined && x.start <= address ? x : undefined;
  }

  first(): Iov | undefined {
    return this.iovs[0];
  }

  /** Takes [start, end) out; returns the pieces it held, in order. */
  take(start: number, end: number): Iov[] {
    const out: Iov[] = [];
    const kept: Iov[] = [];
    for (const x of this.iovs) {
      if (x.end <= start || x.start >= end) {
        kept.push(x);
        continue;
      }
      if (x.start < start) kept.push({ start: x.start, end: start, imgStart: x.imgStart });
      const a = Math.max(x.start, start);
      const b = Math.min(x.end, end);
      out.push({ start: a, end: b, imgStart: x.imgStart + a - x.start });
      if (x.end > end) kept.push({ start: end, end: x.end, imgStart: x.imgStart + end - x.start });
    }
    this.iovs = kept;
    return out;
  }

  /** Puts pieces (back) in. They must not overlap what is here. */
  add(pieces: Iov[]): void {
    if (pieces.length === 0) return;
    this.iovs = [...this.iovs, ...pieces.map((x) => ({ ...x }))].sort((a, b) => a.start - b.start);
  }

  /** [from, from + length) moved to `to` (mremap): what was at the destination is gone. */
  remap(from: number, to: number, length: number): void {
    const moved = this.take(from, from + length);
    this.take(to, to + length);
    this.add(moved.map((x) => ({ start: x.start - from + to, end: x.end - from + to, imgStart: x.imgStart })));
  }

  copy(): LazyIovs {
    return new LazyIovs(this.iovs);
  }
}
