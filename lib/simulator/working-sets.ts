/**
 * Working sets on the simulator, as native/sources/working_set.cc, prefetcher.cc and
 * set_fill.cc: first touches recorded as faults are read; a prefetcher that installs a loaded
 * set in order, one batch per turn of the event loop in background mode (faults, read in their
 * own turns, go between batches) and following the program's demand faults, or at full speed
 * in eager mode while the range's faults wait; a demand fault on a page of the set installs the
 * next pages of the order too. JS thread only.
 */
import { constants } from '../base/constants';
import { Recorder } from '../sources/working-set';
import type { Outcome } from './context';
import type { Source } from './page-sources';
import type { FaultStats } from '../base/fault-stats';

const M = constants.modes;
/** Bytes per COPY, as native Prefetcher::kBatchBytes. */
const BATCH_BYTES = 512 * 1024;
/** Eager mode: batches per turn of the event loop (close() still comes between turns). */
const EAGER_BATCHES = 64;
/** Read-ahead along the set, as native WorkingSet::kMaxAlongBytes. */
const MAX_ALONG_BYTES = 1024 * 1024;
/** Jumps of Follow filled after the rest, as native Prefetcher::kMaxGaps and kMinGap. */
const MAX_GAPS = 64;
const MIN_GAP = 64;

/** The ioctls the prefetcher uses (the SimUserfaultfd's context). */
export interface PrefetchFiller {
  copy(dst: bigint, src: Uint8Array, mode: number): Outcome;
  zeropage(dst: bigint, length: number, mode: number): Outcome;
  wake(start: bigint, length: number): void;
}

export interface SimSetOptions {
  record: boolean;
  /** [firstPage, pageCount, flags] words in order (checked), or null. */
  runs: Uint32Array | null;
  eager: boolean;
  /** Pages per demand fault along the set; 0: adaptive. */
  window: number;
  /** The compact page file (the set's pages in order), or null. */
  pages: Source | null;
  /**
   * Background mode: the set, loaded after serve() returns (sources/set-loading.ts), as the
   * native prefetch thread does: its runs and its checked page file (null: none, or refused),
   * or null when it is not a set (reported by `load`). `skip`: the range went first; only close.
   */
  load: ((skip: boolean) => { runs: Uint32Array; pages: Source | null } | null) | null;
}

export class SimWorkingSet {
  private readonly recorder: Recorder | null;
  private readonly end: bigint;
  private readonly pages: number;
  /** The loaded set: position of each page in the order (-1: not in it), and each run's first position. */
  private positionOf: Int32Array | null = null;
  /** The loaded set's runs, once loaded. */
  private runs: Uint32Array | null = null;
  private readonly starts: number[] = [];
  private total = 0;
  private readonly installedBits: Uint8Array;
  private stopped = false;
  private following = true;
  private holding: boolean;
  private readonly held: (() => void)[] = [];
  private follow = 0;
  private position = 0;
  private readonly gaps: [number, number][] = [];
  private window = 1;
  private lastEnd = 0;
  private readonly tail: Uint8Array;
  /** The compact page file (the set's pages in order), or null. */
  private compact: Source | null;

  constructor(readonly id: number, readonly start: bigint, readonly length: number, private readonly pageSize: number,
              private readonly o: SimSetOptions, private readonly source: Source, private readonly f: PrefetchFiller,
              private readonly stats: FaultStats) {
    this.end = start + BigInt(length);
    this.pages = length / pageSize;
    this.recorder = o.record ? new Recorder(this.pages) : null;
    this.installedBits = new Uint8Array(Math.ceil(this.pages / 8));
    this.tail = new Uint8Array(pageSize);
    const runs = o.runs;
    this.compact = o.pages;
    this.holding = o.eager && runs !== null && runs.length > 0;
    if (o.load !== null) {
      const load = o.load;
      setImmediate(() => {
        const loaded = load(this.stopped);
        if (loaded === null) return;
        this.compact = loaded.pages;
        this.useRuns(loaded.runs);
      });
    } else {
      this.useRuns(runs);
    }
  }

  /** The loaded set's runs (checked): its order, then the prefetch, on a later turn. */
  private useRuns(runs: Uint32Array | null): void {
    this.runs = runs;
    if (runs !== null && runs.length > 0) {
      this.positionOf = new Int32Array(this.pages).fill(-1);
      let pos = 0;
      for (let i = 0; i + 2 < runs.length; i += 3) {
        this.starts.push(pos);
        for (let p = 0; p < runs[i + 1]; p++) this.positionOf[runs[i] + p] = pos + p;
        pos += runs[i + 1];
      }
      this.starts.push(pos);
      this.total = pos;
      setImmediate(() => this.prefetch(0, this.total, true));
    }
  }

  contains(address: bigint): boolean {
    return address >= this.start && address < this.end;
  }

  /** An eager install is in progress: the range's faults wait for it. */
  holds(): boolean {
    return this.holding;
  }

  /** Delivers a held fault once the install ends. */
  whenInstalled(deliver: () => void): void {
    this.held.push(deliver);
  }

  /** A missing-page fault in this range: records its first touch; counts it (and a prefetch miss) unless `counted`. */
  onFault(address: bigint, write: boolean, counted = false): void {
    const page = this.pageOf(address);
    this.recorder?.record(page, write);
    if (counted) return;
    this.stats.demandFaults++;
    if (this.positionOf !== null && this.positionOf[page] >= 0) this.stats.prefetchMisses++;
  }

  /**
   * A demand fault on a page of the set: that page and the next ones in the order, one wake
   * when all are in; the prefetcher then goes on past them. 'not-served' when the page is not
   * in the set (the served range answers it, and reports what fails).
   */
  answerAlong(address: bigint): 'answered' | 'present' | 'retry' | 'not-served' {
    if (this.positionOf === null || !this.following || this.stopped) return 'not-served';
    const page = this.pageOf(address);
    const k = this.positionOf[page];
    if (k < 0) return 'not-served';
    const t0 = process.hrtime.bigint();
    const window = Math.min(this.windowAt(k), this.total - k);
    const at = this.start + BigInt(page * this.pageSize);
    let res: Outcome;
    try {
      res = this.copy(page, k, 1, window > 1 ? M.COPY_DONTWAKE : 0);
    } catch {
      return 'not-served';
    }
    if (res.bytes === 0) {
      if (res.err === 'EEXIST') {
        // Installed since the fault: counted there (each page of the set counts once).
        this.f.wake(at, this.pageSize);
        this.stats.countWake();
        this.follow = Math.max(this.follow, k + 1);
        return 'present';
      }
      return res.err === 'EAGAIN' ? 'retry' : 'not-served';
    }
    this.stats.countResolve(this.pageSize);
    let pos = k + 1;
    const end = k + window;
    while (pos < end) {
      const [page2, count] = this.stretch(pos, end);
      try {
        res = this.copy(page2, pos, count, M.COPY_DONTWAKE);
      } catch {
        break;
      }
      if (res.bytes > 0) pos += this.installed(page2, res.bytes / this.pageSize);
      else if (res.err === 'EEXIST') pos++;
      else break;
    }
    if (window > 1) {
      this.f.wake(at, this.pageSize);
      this.stats.countWake();
    }
    this.lastEnd = pos;
    this.follow = Math.max(this.follow, pos);
    this.stats.recordLatency(Number(process.hrtime.bigint() - t0));
    return 'answered';
  }

  recorded(): Uint32Array {
    return this.recorder ? this.recorder.recorded() : new Uint32Array(0);
  }

  /** One bit per page of the range: the pages installed ahead of the program; null without a loaded set. */
  installedPages(): Uint8Array | null {
    return this.positionOf === null ? null : this.installedBits.slice();
  }

  stop(): void {
    if (!this.stopped) this.compact?.close();
    this.stopped = true;
    this.release();
  }

  /** Layout changed under [start, end) (REMOVE, UNMAP, REMAP): prefetch there stops, and read-ahead along the set. */
  layoutChanged(start: bigint, end: bigint): void {
    if (start < this.end && end > this.start) {
      this.following = false;
      this.stop();
    }
  }

  private pageOf(address: bigint): number {
    return Number((address - this.start) / BigInt(this.pageSize));
  }

  /** As native WorkingSet::WindowAt. */
  private windowAt(pos: number): number {
    if (this.o.window !== 0) return this.o.window;
    const frontier = Math.max(this.lastEnd, this.position);
    this.window = pos >= this.lastEnd && pos <= frontier + this.window
      ? Math.min(this.window * 2, Math.max(1, MAX_ALONG_BYTES / this.pageSize)) : 1;
    return this.window;
  }

  /** The run piece at position `pos`, up to `end`: [page, count]. */
  private stretch(pos: number, end: number): [number, number] {
    let lo = 0;
    let hi = this.starts.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    const runs = this.runs!;
    const off = pos - this.starts[lo];
    return [runs[lo * 3] + off, Math.min(runs[lo * 3 + 1] - off, end - pos)];
  }

  private installed(page: number, count: number): number {
    for (let p = page; p < page + count; p++) this.installedBits[p >> 3] |= 1 << (p & 7);
    this.stats.prefetched += count;
    return count;
  }

  /** The eager install ended (done, stopped, or given up): the held faults are delivered. */
  private release(): void {
    this.holding = false;
    for (const deliver of this.held.splice(0)) deliver();
  }

  /** Batches of positions [pos, to), one turn each (eager: several); then the gaps Follow left. */
  private prefetch(pos: number, to: number, follow: boolean): void {
    const ps = this.pageSize;
    const batchPages = Math.max(1, BATCH_BYTES / ps);
    for (let n = 0; n < (this.o.eager ? EAGER_BATCHES : 1); n++) {
      if (this.stopped) return;
      if (follow && this.follow > pos) {
        if (this.follow - pos >= MIN_GAP && this.gaps.length < MAX_GAPS) this.gaps.push([pos, Math.min(this.follow, to)]);
        pos = this.follow;
      }
      if (pos >= to) {
        const gap = this.gaps.shift();
        if (gap) {
          setImmediate(() => this.prefetch(gap[0], gap[1], false));
        } else {
          this.release();
        }
        return;
      }
      const [page, count] = this.stretch(pos, Math.min(to, pos + batchPages));
      let res: Outcome;
      try {
        res = this.copy(page, pos, count, this.o.eager ? M.COPY_DONTWAKE : 0);
      } catch {
        return this.release(); // an unreadable source: prefetch stops, demand faults report it
      }
      if (res.bytes > 0) {
        pos += this.installed(page, res.bytes / ps);
      } else if (res.err === 'EEXIST') {
        this.installedBits[page >> 3] |= 1 << (page & 7);
        pos++;
      } else if (res.err !== 'EAGAIN') {
        return this.release(); // ENOENT (unregistered, unmapped), ESRCH: stop
      }
      this.position = pos;
    }
    setImmediate(() => this.prefetch(pos, to, follow));
  }

  /** As native SetFill::Copy: from the page file, or from the source (padded, zeros past its end). */
  private copy(page: number, pos: number, count: number, mode: number): Outcome {
    const ps = this.pageSize;
    const dst = this.start + BigInt(page * ps);
    if (this.compact !== null) return this.f.copy(dst, this.compact.read(pos * ps, count * ps), mode);
    const so = page * ps;
    const size = this.source.size;
    if (so >= size) return this.f.zeropage(dst, count * ps, mode === 0 ? 0 : M.ZEROPAGE_DONTWAKE);
    if (size - so >= ps) {
      const len = Math.min(count * ps, Math.floor((size - so) / ps) * ps);
      return this.f.copy(dst, this.source.read(so, len), mode);
    }
    this.tail.fill(0);
    this.tail.set(this.source.read(so, size - so));
    return this.f.copy(dst, this.tail, mode);
  }
}
