/**
 * The ranges a uffd registered and their UFFDIO_REGISTER modes, as the kernel's VMAs hold
 * them: what serve() must not overlap, and what snapshot() and dirtyPages() ask the mode of.
 * Userfaultfd's record (core/userfaultfd.ts); JS thread only.
 */
import { CheckedRange, rangesOverlap } from '../base/args';

export class Registrations implements Iterable<CheckedRange> {
  private readonly ranges: Array<CheckedRange & { mode: number }> = [];
  /** Regions unmapped under a registration (or a served range), not yet forgotten. */
  private readonly unmapped: CheckedRange[] = [];

  /** A region was unmapped over `span`: kept when it held a registration, or `served` says one was served there. */
  noteUnmapped(span: CheckedRange, served: boolean): void {
    if (served || this.ranges.some((x) => rangesOverlap(x, span))) this.unmapped.push(span);
  }

  /**
   * The unmapped spans overlapping `r`, no longer kept, and the registrations within them
   * forgotten (the kernel dropped them with the mapping).
   */
  takeUnmapped(r: CheckedRange): CheckedRange[] {
    const taken = this.unmapped.filter((s) => rangesOverlap(s, r));
    if (taken.length === 0) return taken;
    this.unmapped.splice(0, this.unmapped.length, ...this.unmapped.filter((s) => !taken.includes(s)));
    for (const s of taken) this.removeWithin(s);
    return taken;
  }

  add(r: CheckedRange, mode: number): void {
    this.ranges.push({ ...r, mode });
  }

  /** Unregistering `r` forgets the registrations it holds whole. */
  removeWithin(r: CheckedRange): void {
    const end = r.start + BigInt(r.length);
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      const x = this.ranges[i];
      if (x.start >= r.start && x.start + BigInt(x.length) <= end) this.ranges.splice(i, 1);
    }
  }

  /** The mode of a registration holding all of `r`, the latest first; undefined where none does. */
  modeOf(r: CheckedRange): number | undefined {
    const end = r.start + BigInt(r.length);
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      const x = this.ranges[i];
      if (x.start <= r.start && x.start + BigInt(x.length) >= end) return x.mode;
    }
    return undefined;
  }

  /** Whether one registration holds all of `r`. */
  covers(r: CheckedRange): boolean {
    return this.modeOf(r) !== undefined;
  }

  [Symbol.iterator](): Iterator<CheckedRange> {
    return this.ranges[Symbol.iterator]();
  }
}
