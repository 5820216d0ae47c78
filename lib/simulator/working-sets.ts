/**
 * Working sets on the simulator, as native/sources/working_set.cc and native/sources/prefetcher.cc: first
 * touches recorded as faults are read, and a prefetcher that fills a loaded set in order, one
 * batch per turn of the event loop, so that faults (read in their own turns) go between
 * batches. JS thread only.
 */
import { constants } from '../base/constants';
import { Recorder } from '../sources/working-set';
import type { Outcome } from './context';
import type { Source } from './page-sources';
import type { FaultStats } from '../base/fault-stats';

const M = constants.modes;
/** Bytes per COPY, as native Prefetcher::kBatchBytes. */
const BATCH_BYTES = 512 * 1024;

/** The ioctls the prefetcher uses (the SimUserfaultfd's context). */
export interface PrefetchFiller {
  copy(dst: bigint, src: Uint8Array, mode: number): Outcome;
  zeropage(dst: bigint, length: number, mode: number): Outcome;
  wake(start: bigint, length: number): void;
}

export class SimWorkingSet {
  private readonly recorder: Recorder | null;
  private readonly loaded: Uint8Array | null = null;
  private readonly end: bigint;
  private stopped = false;
  /** Pages of the loaded set gone past, in set order; -1 without prefetch. */
  cursor = -1;

  constructor(readonly id: number, readonly start: bigint, readonly length: number, private readonly pageSize: number,
              record: boolean, private readonly runs: Uint32Array | null, private readonly source: Source,
              private readonly f: PrefetchFiller, private readonly stats: FaultStats) {
    this.end = start + BigInt(length);
    const pages = length / pageSize;
    this.recorder = record ? new Recorder(pages) : null;
    if (runs !== null && runs.length > 0) {
      this.loaded = new Uint8Array(pages);
      for (let i = 0; i + 1 < runs.length; i += 2) this.loaded.fill(1, runs[i], runs[i] + runs[i + 1]);
      this.cursor = 0;
      setImmediate(() => this.prefetch(0, 0));
    }
  }

  contains(address: bigint): boolean {
    return address >= this.start && address < this.end;
  }

  /** A missing-page fault in this range: records its first touch; counts a prefetch miss. */
  onFault(address: bigint, write: boolean): void {
    const page = Number((address - this.start) / BigInt(this.pageSize));
    this.recorder?.record(page, write);
    if (this.loaded !== null && this.loaded[page]) this.stats.prefetchMisses++;
  }

  recorded(): Uint32Array {
    return this.recorder ? this.recorder.recorded() : new Uint32Array(0);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Layout changed under [start, end) (REMOVE, UNMAP, REMAP): prefetch there stops. */
  layoutChanged(start: bigint, end: bigint): void {
    if (start < this.end && end > this.start) this.stopped = true;
  }

  /** One batch of run `run` from page `pos` of it; the next batch in a later turn. */
  private prefetch(run: number, pos: number): void {
    const runs = this.runs!;
    if (this.stopped || run * 2 >= runs.length) return;
    const ps = this.pageSize;
    const runStart = this.start + BigInt(runs[run * 2] * ps);
    const runLength = runs[run * 2 + 1] * ps;
    const dst = runStart + BigInt(pos);
    const n = Math.min(runLength - pos, BATCH_BYTES);
    let res: Outcome;
    try {
      res = this.copyBatch(dst, n);
    } catch {
      return; // an unreadable source: prefetch stops, demand faults report it
    }
    if (res.bytes > 0) {
      this.stats.prefetched += res.bytes / ps;
      this.cursor += res.bytes / ps;
      pos += res.bytes;
    } else if (res.err === 'EEXIST') {
      this.cursor++;
      pos += ps;
    } else if (res.err !== 'EAGAIN') {
      return; // ENOENT (unregistered, unmapped), ESRCH: stop
    }
    if (pos >= runLength) {
      this.f.wake(runStart, runLength); // one wake per run
      run++;
      pos = 0;
    }
    setImmediate(() => this.prefetch(run, pos));
  }

  private copyBatch(dst: bigint, n: number): Outcome {
    const ps = this.pageSize;
    const so = Number(dst - this.start);
    const size = this.source.size;
    if (so >= size) return this.f.zeropage(dst, n, M.ZEROPAGE_DONTWAKE);
    if (size - so >= ps) {
      const len = Math.min(n, Math.floor((size - so) / ps) * ps);
      return this.f.copy(dst, this.source.read(so, len), M.COPY_DONTWAKE);
    }
    const tail = new Uint8Array(ps);
    tail.set(this.source.read(so, size - so));
    return this.f.copy(dst, tail, M.COPY_DONTWAKE);
  }
}
