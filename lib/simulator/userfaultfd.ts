/**
 * Userfaultfd over the simulated address space: the same operations, events and errors as
 * the kernel backend (lib/kernel/userfaultfd.ts), for every platform. JS thread only.
 */
import * as fs from 'fs';
import { CheckedRange, toFeatureNames } from '../base/args';
import { constants, featureMask, featureNames, ioctlNames } from '../base/constants';
import { closedError, invalidArgType, uffdError } from '../base/errors';
import type { PageSource } from '../sources/page-source';
import type { FillResult, OpenOptions, PageFault, Stats } from '../base/types';
import type { ServeSets } from '../core/serving';
import { EXISTED, UffdEvent, Userfaultfd } from '../core/userfaultfd';
import { addressSpace, Mapping, Stager } from './address-space';
import { Message, Outcome, Reader, UffdContext, Waiter } from './context';
import { allocateFd, releaseFd } from './fds';
import { openFile, openSource, reopen, ServedRanges, Source, stage, unstage } from './page-sources';
import type { ImageStore } from '../core/shared-image';
import type { SimImageStore } from './image-store';
import { FaultStats } from '../base/fault-stats';
import { SimWorkingSet } from './working-sets';
import { checkRuns, LoadedSet } from '../sources/working-set';
import { checkSetPages, setPagesPath } from '../sources/set-pages';
import { readOpenSet, SetFile } from '../sources/set-loading';
import { refuseUnsimulated } from './refusals';
import { scanWritten, SimSnapshot } from './snapshot';
import type { DirtyRun } from '../sources/dirty';
import type { RawSnapshotResult } from '../sources/snapshot';

const PF = constants.pagefaultFlags;
/** UFFDIO_API's answer: REGISTER, UNREGISTER and API. */
const API_IOCTLS = (1n << 0n) | (1n << 1n) | (1n << 63n);

/** Every open simulated uffd, by its fake fd number (for fromFd). */
const byFd = new Map<number, SimUserfaultfd>();

export class SimUserfaultfd extends Userfaultfd implements Reader {
  readonly backend = 'simulator' as const;
  private readonly ctx: UffdContext;
  private readonly fdNumber: number;
  private readonly served: ServedRanges;
  private readonly counters = new FaultStats();
  private keepAlive: ReturnType<typeof setInterval> | null = null;
  private reading = false;
  private readonly stagers = new Map<number, { m: Mapping; stager: Stager }>();
  private readonly workingSets = new Map<number, SimWorkingSet>();
  private readonly snapshots = new Set<SimSnapshot>();

  private readonly ordered: boolean;

  constructor(ctx: UffdContext, options: OpenOptions) {
    super({ features: featureNames(ctx.featureBits), ioctls: ioctlNames(API_IOCTLS), pageSize: constants.pageSize, options });
    this.ctx = ctx;
    ctx.attach();
    this.fdNumber = allocateFd();
    this.served = new ServedRanges(this.pageSize);
    this.ordered = options.orderedAnswers === true;
    byFd.set(this.fdNumber, this);
  }

  /** A fake fd number (>= 1000), or -1 once closed. */
  get fd(): number {
    return this.closed ? -1 : this.fdNumber;
  }

  protected _register(start: bigint, length: number, mode: number): bigint {
    const r = this.ctx.register(start, length, mode);
    if ('err' in r) throw uffdError(r.err, 'UFFDIO_REGISTER');
    return r.mask;
  }
  protected _unregister(start: bigint, length: number): void {
    const err = this.ctx.unregister(start, length);
    if (err) throw uffdError(err, 'UFFDIO_UNREGISTER');
  }
  protected _copy(dst: bigint, src: Uint8Array, mode: number, existOk = false): number {
    if (this.behindEvents()) throw uffdError('EAGAIN', 'UFFDIO_COPY', 0);
    return this.resolved(this.ctx.copy(dst, src, mode), 'UFFDIO_COPY', existOk);
  }
  protected _zeropage(start: bigint, length: number, mode: number, existOk = false): number {
    if (this.behindEvents()) throw uffdError('EAGAIN', 'UFFDIO_ZEROPAGE', 0);
    return this.resolved(this.ctx.zeropage(start, length, mode), 'UFFDIO_ZEROPAGE', existOk);
  }
  /** orderedAnswers: a layout event waits in the queue, not yet given to the listeners. */
  private behindEvents(): boolean {
    return this.ordered && this.ctx.eventQueued();
  }
  protected _wake(start: bigint, length: number): void {
    this.ctx.wakeRange(start, length);
    this.counters.countWake();
  }
  protected _writeProtect(start: bigint, length: number, mode: number): void {
    const err = this.ctx.writeProtect(start, length, mode);
    if (err) throw uffdError(err, 'UFFDIO_WRITEPROTECT');
  }
  protected _continue(start: bigint, length: number, mode: number, existOk = false): number {
    return this.resolved(this.ctx.continue(start, length, mode), 'UFFDIO_CONTINUE', existOk);
  }
  protected _poison(start: bigint, length: number, mode: number): number {
    const r = this.ctx.poison(start, length, mode);
    if (r.err) throw uffdError(r.err, 'UFFDIO_POISON', r.bytes);
    return r.bytes;
  }
  protected _move(dst: bigint, src: bigint, length: number, mode: number, existOk = false): number {
    return this.resolved(this.ctx.move(dst, src, length, mode), 'UFFDIO_MOVE', existOk);
  }

  /** Throws the kernel's error for a failed ioctl (EEXIST is EXISTED with `existOk`, as native);
   * counts a successful one (as native stats). */
  private resolved(r: Outcome, syscall: string, existOk = false): number {
    if (r.err === 'EEXIST' && existOk && !r.bytes) return EXISTED;
    if (r.err) throw uffdError(r.err, syscall, r.bytes);
    this.counters.countResolve(r.bytes);
    return r.bytes;
  }

  protected _serve(r: CheckedRange, source: PageSource, readahead: number, zeroRemoved: boolean, sets: ServeSets,
                   unit?: number): unknown {
    if (sets.prefetch) checkRuns(sets.prefetch, r.length / this.pageSize, sets.corrupt);
    const src = openSource(source);
    const id = this.addServed(r, src, readahead, zeroRemoved, unit ?? this.pageSize);
    if (sets.record || sets.prefetch !== null || sets.file !== null) {
      // The page file's fd is the caller's until serve() returns: read through a copy of it.
      const pages = sets.pages && sets.prefetch ? openFile(sets.pages.fd, sets.pages.offset) : null;
      const o = { record: sets.record, runs: sets.prefetch, eager: sets.eager, window: sets.window, pages, load: loadLater(sets.file, sets.pagesLater, source, this.pageSize) };
      this.workingSets.set(id, new SimWorkingSet(id, r.start, r.length, this.pageSize, o, src, {
        copy: (dst, bytes, mode) => this.ctx.copy(dst, bytes, mode),
        zeropage: (dst, length, mode) => this.ctx.zeropage(dst, length, mode),
        wake: (start, length) => this.ctx.wakeRange(start, length),
      }, this.counters));
    }
    return id;
  }
  /** A clone: private copies of the image's pages (image-store.ts); a JavaScript source's faults go to claim(). */
  protected _serveImage(r: CheckedRange, store: ImageStore, readahead: number): unknown {
    const s = store as SimImageStore;
    return s.nativeSource ? this.addServed(r, s.view, readahead, false, this.pageSize) : null;
  }
  private addServed(r: CheckedRange, src: Source, readahead: number, zeroRemoved: boolean, unit: number): number {
    const id = this.served.add(r.start, r.length, src, readahead, zeroRemoved, unit);
    const m = addressSpace.findRange(r.start, r.length);
    if (m !== null) this.stagers.set(id, { m, stager: stage(m, r.start, r.length, src, (a) => this.served.readsZero(a)) });
    return id;
  }
  protected _fill(): Promise<FillResult> {
    // No reader thread to fill between: the fill happens at once, on the next turn.
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        if (this.closed) return reject(closedError('userfaultfd'));
        const pages = this.served.fillAll({
          copy: (dst, src) => this.ctx.copy(dst, src, 0),
          zeropage: (dst, length) => this.ctx.zeropage(dst, length, 0),
          wake: (start, length) => this.ctx.wakeRange(start, length),
          resident,
        });
        this.counters.filled += pages;
        resolve({ pages, ownerGone: false });
      });
    });
  }
  protected _recorded(handle: unknown): Uint32Array {
    return this.workingSets.get(handle as number)?.recorded() ?? new Uint32Array(0);
  }
  protected _installed(handle: unknown): Uint8Array | null {
    return this.workingSets.get(handle as number)?.installedPages() ?? null;
  }
  protected _unserve(handle: unknown): void {
    const id = handle as number;
    this.workingSets.get(id)?.stop();
    this.workingSets.delete(id);
    const s = this.stagers.get(id);
    if (s) unstage(s.m, s.stager);
    this.stagers.delete(id);
    this.served.remove(id);
  }
  protected _stats(): Stats {
    return this.counters.snapshot();
  }
  /**
   * What is queued now, decoded as the kernel backend decodes it. Never blocks, whatever
   * timeoutMs says: the simulated faulting threads are this thread's own promises, so a wait
   * here could only end at the timeout with nothing new (docs/fast-handlers.md).
   */
  protected _readSync(max: number): UffdEvent[] {
    return this.ctx.take(max).map((m) => {
      if (m.kind === 'event') {
        const e = m.event;
        if (e.type === 'remove' || e.type === 'unmap') this.served.forget(e.start, e.end, e.type === 'remove');
        return e;
      }
      this.counters.countFault();
      return this.faultEvent(m.waiter);
    });
  }
  protected _dirtyPages(start: bigint, length: number, reset: boolean): DirtyRun[] {
    return scanWritten(this.ctx, start, length, reset);
  }
  protected _dirtyOffsets(start: bigint, length: number, reset: boolean): Float64Array {
    const runs = scanWritten(this.ctx, start, length, reset);
    const offsets = new Float64Array(runs.length * 2);
    runs.forEach((r, i) => {
      offsets[2 * i] = Number(r.start - start);
      offsets[2 * i + 1] = r.length;
    });
    return offsets;
  }
  protected async _snapshot(start: bigint, length: number, _pageSize: number, fd: number): Promise<RawSnapshotResult> {
    const s = new SimSnapshot(this.ctx, start, length);
    this.snapshots.add(s);
    try {
      return await s.run(fd);
    } finally {
      this.snapshots.delete(s);
    }
  }
  protected _startReader(): void {
    this.reading = true;
    this.ctx.startReading(this);
  }
  protected _setRef(refed: boolean): void {
    // The native reader's uv handle keeps the loop alive while ref'd; a timer does here.
    if (refed && this.keepAlive === null) {
      this.keepAlive = setInterval(() => undefined, 0x7fffffff);
    } else if (!refed && this.keepAlive !== null) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }
  protected _close(): void {
    this._setRef(false);
    for (const id of [...this.stagers.keys()]) this._unserve(id);
    for (const ws of this.workingSets.values()) ws.stop();
    this.workingSets.clear();
    this.served.clear();
    byFd.delete(this.fdNumber);
    releaseFd(this.fdNumber);
    this.ctx.detach(this.reading ? this : null);
  }

  /** The context's reader delivers one message: what native OnMessage and KernelUserfaultfd's deliver() do. */
  onMessage(m: Message): void {
    if (!this.closed) this.delivery.isolated(() => this.deliver(m));
  }

  private faultEvent(w: Waiter): PageFault {
    const e: PageFault = {
      type: 'pagefault', address: w.address,
      write: (w.flags & PF.WRITE) !== 0, wp: (w.flags & PF.WP) !== 0, minor: (w.flags & PF.MINOR) !== 0,
      flags: w.flags,
    };
    if (this.ctx.has('THREAD_ID')) e.tid = w.tid;
    return e;
  }

  /**
   * A REMOVE was posted: the kernel's caller waits until the reader has read it, so the reader
   * knows the span before any later access; the simulator's dontneed does not wait, so the span
   * is recorded here, as it is posted.
   */
  eventPosted(e: UffdEvent): void {
    if (e.type === 'remove' && !this.closed) this.served.forget(e.start, e.end, true);
  }

  private deliver(m: Message): void {
    if (m.kind === 'event') {
      const e = m.event;
      if (e.type === 'remove' || e.type === 'unmap') this.served.forget(e.start, e.end, e.type === 'remove');
      // No remap or fork here: those features are accepted, their events never occur (refusals.ts).
      for (const ws of this.workingSets.values()) {
        if (e.type === 'remove' || e.type === 'unmap') ws.layoutChanged(e.start, e.end);
      }
      this.dispatch(e);
      return;
    }
    const w = m.waiter;
    if (w.flags & PF.WP) {
      // A live snapshot's page: saved first, then released, with no JavaScript handler (native:
      // the reader thread does it, snapshot_writer.cc).
      for (const s of this.snapshots) {
        if (s.contains(w.address)) return s.onWriteFault(w);
      }
    }
    const ws = [...this.workingSets.values()].find((x) => x.contains(w.address));
    if (ws?.holds() && !(w.flags & (PF.WP | PF.MINOR))) {
      // An eager install holds its range's faults until the set is in (native: retried).
      ws.whenInstalled(() => this.onMessage(m));
      return;
    }
    this.counters.countFault();
    const e = this.faultEvent(w);
    // Minor and write-protect faults are the handler's to decide; sources fill missing pages.
    let sourceFailed: string | null = null;
    if (!e.wp && !e.minor) {
      const along = ws?.answerAlong(w.address) ?? 'not-served';
      if (along === 'retry') {
        // A non-cooperative event is not read yet (the context refuses the copy): after it.
        this.counters.faults--;
        setImmediate(() => this.onMessage(m));
        return;
      }
      const out = along === 'answered' || along === 'present' ? { result: 'answered' as const } : this.served.answer(w.address, {
        copy: (dst, src) => this.ctx.copy(dst, src, 0),
        zeropage: (dst, length) => this.ctx.zeropage(dst, length, 0),
        wake: (start, length) => this.ctx.wakeRange(start, length),
        resident,
      }, this.counters);
      if (out.result !== 'not-served') {
        if (ws) ws.onFault(w.address, e.write, along === 'present');
        else this.counters.demandFaults++;
      }
      if (out.result === 'answered') return;
      if (out.result === 'failed') sourceFailed = out.err!;
    }
    this.delivery.deliverFault(e, sourceFailed ?? undefined);
  }
}

/** mincore(2) of one page: a shared mapping reports its page cache, a private one its page table. */
function resident(address: bigint): boolean | null {
  const m = addressSpace.find(address);
  if (m === null) return null;
  const p = m.pageOf(address);
  return (m.shared ? m.backing.cached[p] : m.mapped[p]) === 1;
}

/**
 * Userfaultfd.open on the simulator: every feature it models is offered (refusals.ts lists the
 * rest); THREAD_ID is on by default.
 */
export function openSimulated(options: OpenOptions): SimUserfaultfd {
  const wanted = toFeatureNames(options.features);
  refuseUnsimulated(wanted, options);
  let mask = featureMask(wanted);
  if (!wanted.includes('THREAD_ID')) mask += constants.features.THREAD_ID;
  return new SimUserfaultfd(new UffdContext(mask), options);
}

/** Userfaultfd.fromFd on the simulator: a duplicate of an open simulated uffd of this thread. */
export function adoptSimulatedFd(fd: number, options: OpenOptions): SimUserfaultfd {
  const u = byFd.get(fd);
  if (!u || u.closed) throw invalidArgType('fd', 'an open simulated userfaultfd (of this thread)', fd);
  // The features are the fd's own (as native reads them from fdinfo); the policy is this copy's.
  refuseUnsimulated([], options);
  return new SimUserfaultfd(u['ctx'], options);
}

/**
 * Background mode's set, read now (its fd is the caller's until serve() returns) and checked on
 * a later turn, as the native prefetch thread does after serve() returns, then its page file
 * (`pagesFd`, through a copy of it): the runs and the checked page file, or null with the error
 * reported. A refused page file is reported too; the pages then come from the source.
 */
function loadLater(file: SetFile | null, pagesFd: number | null, source: PageSource, pageSize: number):
  ((skip: boolean) => { runs: Uint32Array; pages: Source | null } | null) | null {
  if (file === null) return null;
  const load = readOpenSet(file);
  const pages = pagesFd === null ? null : reopen(pagesFd);
  return (skip) => {
    try {
      if (skip) return null;
      let loaded: LoadedSet;
      try {
        loaded = load();
      } catch (err) {
        file.failed(err as Error);
        return null;
      }
      let compact: Source | null = null;
      if (pages !== null && loaded.words.length > 0) {
        try {
          checkSetPages(pages, fs.fstatSync(pages).size, setPagesPath(file.path), loaded.words, loaded.checksum, source, pageSize);
          compact = openFile(pages, pageSize);
        } catch (err) {
          file.failed(err as Error);
        }
      }
      return { runs: loaded.words, pages: compact };
    } finally {
      if (pages !== null) fs.closeSync(pages);
    }
  };
}
