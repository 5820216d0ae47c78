/**
 * Userfaultfd: the public class. Argument checks, event delivery, lifetime and policy live
 * here once; a backend (the kernel, or the simulator) supplies the operations.
 */
import { EventEmitter } from 'events';
import { checkAligned, CheckedRange, toAddress, toBytes, toFlag, toLength, toOptions, toRange } from './args';
import { chooseBackend } from './backend';
import { constants, FeatureName, HUGE_PAGE_SIZE, IoctlName, ioctlNames } from './constants';
import { checkDirtyTracking, DirtyRun, toDirtyOptions } from './dirty';
import { closedError, codedError, invalidArgType, outOfRange, UffdError, uffdError } from './errors';
import { EventQueue, isEventType } from './events';
import { PageSource } from './page-source';
import { CustomServer, SourceCounters } from './custom-source';
import { Region } from './region';
import {
  CheckedRefine, readWorkingSet, refine, sourceSize, toPrefetchRuns, toRefineOptions, toSetPath, WorkingSetFile,
  WorkingSetShape, writeWorkingSet,
} from './working-set';
import { busyError, openDestination, RawSnapshotResult, SnapshotResult, toResult, wpAsyncError } from './snapshot';
import { checkSourceOverlap } from './source-overlap';
import type {
  BackendName, ContinueOptions, CopyOptions, MoveOptions, OpenOptions, PageFault, Range,
  ReadSyncOptions, RegisterOptions, RegisterResult, SelfFaultPolicy, ServeOptions, Stats, WakeOptions,
  WriteProtectOptions,
} from './types';
import type { UffdEvent } from './typed-events';

const M = constants.modes;

/** Checked before a backend opens anything, so that a bad option leaks no fd. */
function checkSelfFaultPolicy(policy: unknown): void {
  if (policy !== undefined && policy !== 'zeropage' && policy !== 'sigbus' && policy !== 'source') {
    throw invalidArgType('options.onSelfFault', "'zeropage', 'sigbus' or 'source'", policy);
  }
}

/**
 * Every open uffd of this thread, both backends, closed at exit: libuv joins its thread pool
 * at exit, and a pool thread waiting on a fault would hold the process forever. Held weakly:
 * a uffd dropped without close() is still collected (its native finalizer closes the fd).
 */
const openUffds = new Set<WeakRef<Userfaultfd>>();
const collected = new FinalizationRegistry<WeakRef<Userfaultfd>>((ref) => openUffds.delete(ref));
let exitHookInstalled = false;

function track(u: Userfaultfd): WeakRef<Userfaultfd> {
  const ref = new WeakRef(u);
  openUffds.add(ref);
  collected.register(u, ref, ref);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const r of [...openUffds]) r.deref()?.close();
    });
  }
  return ref;
}

function untrack(ref: WeakRef<Userfaultfd>): void {
  openUffds.delete(ref);
  collected.unregister(ref);
}

/** A served range; stop() returns its faults to the JS handlers. */
export interface Served {
  readonly start: bigint;
  readonly length: number;
  stop(): void;
}

/** What a backend's serve takes besides the source: record first touches; prefetch these runs. */
export interface ServeSets {
  record: boolean;
  /** [firstPage, pageCount] pairs of the range, in order; null: no prefetch. */
  prefetch: Uint32Array | null;
}

/** A served range's working set: where it is saved and what it refines. */
interface ServedSet {
  handle: unknown;
  range: CheckedRange;
  record: string | undefined;
  loaded: WorkingSetFile | null;
  shape: WorkingSetShape;
  refine: CheckedRefine;
}

export interface UffdInit {
  features: Array<FeatureName | number>;
  ioctls: Array<IoctlName | number>;
  pageSize: number;
  options: OpenOptions;
}

export abstract class Userfaultfd extends EventEmitter {
  abstract readonly backend: BackendName;
  abstract readonly fd: number;
  /** The features negotiated with the kernel (or the simulator). */
  readonly features: ReadonlyArray<FeatureName | number>;
  /** The ioctls the fd supports (UFFDIO_API's answer). */
  readonly ioctls: ReadonlyArray<IoctlName | number>;
  readonly pageSize: number;
  /**
   * True when the fd is UFFD_USER_MODE_ONLY (asked for, or the fallback where the kernel refuses
   * a full uffd): a missing page touched inside a system call then fails with EFAULT.
   */
  readonly userModeOnly: boolean;
  protected readonly selfFaultPolicy: SelfFaultPolicy;

  private isClosed = false;
  private refed = true;
  private readerStarted = false;
  private readonly queues = new Set<EventQueue<UffdEvent>>();
  private readonly registered: Array<CheckedRange & { mode: number }> = [];
  private readonly snapshotting = new Set<CheckedRange>();
  private readonly servedHandles = new Set<Served>();
  private readonly servedSets = new Map<Served, ServedSet>();
  private readonly faultTimeoutMs: number | undefined;
  /** Faults delivered to JS and not yet answered, by page: the faultTimeoutMs watch. */
  private readonly unanswered = new Map<bigint, { fault: PageFault; timer: NodeJS.Timeout }>();
  private readonly tracking: WeakRef<Userfaultfd>;
  /** Ranges served by PageSource.custom/http, answered in JavaScript (lib/custom-source.ts). */
  private readonly customServers = new Set<CustomServer>();
  private sourceCounters: SourceCounters | null = null;

  /** Opens a userfaultfd on the chosen backend ('auto': the kernel where it can, else the simulator). */
  static open(options: OpenOptions = {}): Userfaultfd {
    const o = checkOpenOptions(options);
    return chooseBackend(o.backend).open(o as OpenOptions);
  }

  /**
   * Adopts a userfaultfd fd (received from another process, or a Worker's copy). Duplicates it.
   * `backend` defaults to 'auto' as in open(): the kernel where it serves, else the simulator
   * (whose fake fds can be adopted within the same thread).
   */
  static fromFd(fd: number, options: OpenOptions = {}): Userfaultfd {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    if (!Number.isInteger(fd) || fd < 0) throw outOfRange('fd', 'a non-negative integer', fd);
    const o = checkOpenOptions(options);
    return chooseBackend(o.backend).fromFd(fd, o as OpenOptions);
  }

  protected constructor(init: UffdInit) {
    super();
    this.features = Object.freeze([...init.features]);
    this.ioctls = Object.freeze([...init.ioctls]);
    this.pageSize = init.pageSize;
    this.userModeOnly = init.options.userModeOnly === true;
    checkSelfFaultPolicy(init.options.onSelfFault);
    this.selfFaultPolicy = init.options.onSelfFault ?? 'zeropage';
    this.faultTimeoutMs = init.options.faultTimeoutMs;
    this.tracking = track(this);
    this.on('newListener', (name: string | symbol) => {
      if (isEventType(name)) this.consumersChanged(1);
    });
    this.on('removeListener', (name: string | symbol) => {
      if (isEventType(name)) this.consumersChanged(0);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  // ---- the ioctls ---------------------------------------------------------------------------

  /** UFFDIO_REGISTER. `missing` defaults to true unless `wp` or `minor` is asked. */
  register(range: Range | Region, options: RegisterOptions = {}): RegisterResult {
    this.checkOpen();
    const r = this.range(range);
    const o = toOptions<RegisterOptions>(options, 'options');
    const wp = toFlag(o.wp, 'options.wp');
    const minor = toFlag(o.minor, 'options.minor');
    const missing = o.missing === undefined ? !(wp || minor) : toFlag(o.missing, 'options.missing');
    const mode = (missing ? M.REGISTER_MISSING : 0) | (wp ? M.REGISTER_WP : 0) | (minor ? M.REGISTER_MINOR : 0);
    const mask = this._register(r.start, r.length, mode);
    this.registered.push({ ...r, mode });
    return { ioctls: ioctlNames(mask) };
  }

  /**
   * UFFDIO_UNREGISTER: threads waiting on faults in the range retry as ordinary faults. A range
   * another userfaultfd registered (not a fromFd() copy of this one): Linux 6.18 refuses it
   * (EINVAL); older kernels (6.12) unregister it from the other uffd. The package cannot tell a
   * copy of this uffd from another one, so it leaves that to the kernel.
   */
  unregister(range: Range | Region): void {
    this.checkOpen();
    const r = this.range(range);
    this._unregister(r.start, r.length);
    this.answered(r.start, r.length); // unregistering wakes the waiting threads
    const rEnd = r.start + BigInt(r.length);
    for (const ws of this.servedSets.values()) {
      if (ws.range.start < rEnd && ws.range.start + BigInt(ws.range.length) > r.start) this.autoSave(ws);
    }
    const end = r.start + BigInt(r.length);
    for (let i = this.registered.length - 1; i >= 0; i--) {
      const x = this.registered[i];
      if (x.start >= r.start && x.start + BigInt(x.length) <= end) this.registered.splice(i, 1);
    }
  }

  /** UFFDIO_COPY of `src` (a page multiple) to `dst`; returns the bytes copied. */
  copy(dst: bigint | number | Range | Region, src: Uint8Array | ArrayBuffer, options: CopyOptions = {}): number {
    this.checkOpen();
    const d = this.address(dst, 'dst');
    const bytes = toBytes(src, 'src');
    if (bytes.byteLength === 0) throw outOfRange('src.byteLength', 'a positive multiple of the page size', 0);
    checkAligned(bytes.byteLength, this.pageSize, 'src.byteLength');
    const o = toOptions<CopyOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.COPY_DONTWAKE : 0) | (toFlag(o.wp, 'options.wp') ? M.COPY_WP : 0);
    // The per-fault path: no closure here, or V8 allocates its context on every call (96 bytes).
    if (this.unanswered.size === 0) return this._copy(d, bytes, mode);
    return this.copyWatched(d, bytes, mode);
  }

  private copyWatched(d: bigint, bytes: Uint8Array, mode: number): number {
    return this.answering(d, bytes.byteLength, (mode & M.COPY_DONTWAKE) === 0, () => this._copy(d, bytes, mode));
  }

  /** UFFDIO_ZEROPAGE; returns the bytes zeroed. */
  zeropage(range: Range | Region, options: WakeOptions = {}): number {
    this.checkOpen();
    const r = this.range(range);
    const o = toOptions<WakeOptions>(options, 'options');
    const dontWake = toFlag(o.dontWake, 'options.dontWake');
    return this.answering(r.start, r.length, !dontWake, () => this._zeropage(r.start, r.length, dontWake ? M.ZEROPAGE_DONTWAKE : 0));
  }

  /** UFFDIO_WAKE: wakes the threads waiting on faults in the range. */
  wake(range: Range | Region): void {
    this.checkOpen();
    const r = this.range(range);
    this._wake(r.start, r.length);
    this.answered(r.start, r.length);
  }

  /** UFFDIO_WRITEPROTECT: protect or un-protect (which wakes, unless dontWake). */
  writeProtect(range: Range | Region, options: WriteProtectOptions): void {
    this.checkOpen();
    const r = this.range(range);
    const o = toOptions<WriteProtectOptions>(options, 'options');
    if (typeof o.protect !== 'boolean') throw invalidArgType('options.protect', 'of type boolean', o.protect);
    const mode = (o.protect ? M.WRITEPROTECT_WP : 0) | (toFlag(o.dontWake, 'options.dontWake') ? M.WRITEPROTECT_DONTWAKE : 0);
    this._writeProtect(r.start, r.length, mode);
    if (!o.protect && !o.dontWake) this.answered(r.start, r.length);
  }

  /** UFFDIO_CONTINUE: maps the page-cache pages of a MINOR range; returns the bytes mapped. */
  continue(range: Range | Region, options: ContinueOptions = {}): number {
    this.checkOpen();
    const r = this.range(range);
    const o = toOptions<ContinueOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.CONTINUE_DONTWAKE : 0) | (toFlag(o.wp, 'options.wp') ? M.CONTINUE_WP : 0);
    return this.answering(r.start, r.length, (mode & M.CONTINUE_DONTWAKE) === 0, () => this._continue(r.start, r.length, mode));
  }

  /** UFFDIO_POISON: the pages raise SIGBUS when touched; returns the bytes poisoned. */
  poison(range: Range | Region, options: WakeOptions = {}): number {
    this.checkOpen();
    const r = this.range(range);
    const o = toOptions<WakeOptions>(options, 'options');
    const dontWake = toFlag(o.dontWake, 'options.dontWake');
    return this.answering(r.start, r.length, !dontWake, () => this._poison(r.start, r.length, dontWake ? M.POISON_DONTWAKE : 0));
  }

  /** UFFDIO_MOVE of `length` bytes from `src` to `dst`; returns the bytes moved. */
  move(dst: bigint | number | Range | Region, src: bigint | number | Range | Region, length: number, options: MoveOptions = {}): number {
    this.checkOpen();
    const d = this.address(dst, 'dst');
    const s = this.address(src, 'src');
    toLength(length, 'length');
    checkAligned(length, this.pageSize, 'length');
    const o = toOptions<MoveOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.MOVE_DONTWAKE : 0) |
      (toFlag(o.allowSrcHoles, 'options.allowSrcHoles') ? M.MOVE_ALLOW_SRC_HOLES : 0);
    return this.answering(d, length, (mode & M.MOVE_DONTWAKE) === 0, () => this._move(d, s, length, mode));
  }

  // ---- serving --------------------------------------------------------------------------------

  /**
   * Answers every missing-page fault in the range from `source`, without JavaScript per fault.
   * Registers the range for missing faults first if this uffd has not.
   */
  serve(range: Range | Region, source: PageSource, options: ServeOptions = {}): Served {
    this.checkOpen();
    const r = this.range(range);
    if (!(source instanceof PageSource)) throw invalidArgType('source', 'a PageSource', source);
    if (this.features.includes('SIGBUS')) {
      throw codedError('ERR_UFFD_SERVE_SIGBUS', 'serve() cannot answer faults on a userfaultfd opened with the SIGBUS ' +
        'feature: the kernel raises SIGBUS in the faulting thread instead of reporting the fault');
    }
    const o = toOptions<ServeOptions>(options, 'options');
    const unit = this.servedPageSize(range, r, o.pageSize);
    const record = toSetPath(o.record, 'options.record');
    const prefetch = toSetPath(o.prefetch, 'options.prefetch');
    if (unit !== this.pageSize && source.custom !== null) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `custom and http sources answer ${this.pageSize}-byte pages, not ${unit}-byte ones`);
    }
    if (unit !== this.pageSize && (record !== undefined || prefetch !== undefined)) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `working sets (record, prefetch) are kept in ${this.pageSize}-byte pages, not ${unit}-byte ones`);
    }
    const refineOptions = toRefineOptions(o.workingSet, this.pageSize);
    // A recording is exact only one page per fault: pages read-ahead fills are never recorded.
    let readahead = this.readahead(o.readahead === undefined && record !== undefined ? false : o.readahead);
    if (readahead !== 0 && readahead % unit !== 0) readahead = Math.ceil(readahead / unit) * unit;
    const removed = o.removed ?? 'source';
    if (removed !== 'source' && removed !== 'zero') throw invalidArgType('options.removed', "'source' or 'zero'", removed);
    if (source.custom !== null && removed !== 'source') {
      throw invalidArgType('options.removed', "'source' for a custom or http source (dropped pages are read again)", removed);
    }
    if (source.custom !== null && prefetch !== undefined) {
      throw codedError('ERR_UFFD_PREFETCH_UNSUPPORTED', 'serve(): a custom or http source records a working set ' +
        '({ record }) but cannot prefetch one yet ({ prefetch })');
    }
    const end = r.start + BigInt(r.length);
    for (const x of this.servedHandles) {
      if (r.start < x.start + BigInt(x.length) && end > x.start) {
        throw outOfRange('range', `outside the ranges already served (0x${x.start.toString(16)}, ${x.length} bytes)`,
          `0x${r.start.toString(16)}, ${r.length} bytes`);
      }
    }
    checkSourceOverlap(source, [r, ...this.registered]);
    let set: ServedSet | null = null;
    if (record !== undefined || prefetch !== undefined) {
      const shape = { pageSize: this.pageSize, sourceSize: sizeOf(source), rangeLength: r.length };
      const loaded = prefetch === undefined ? null : readWorkingSet(prefetch, shape);
      if (prefetch !== undefined && loaded === null && prefetch !== record) {
        throw uffdError('ENOENT', 'open', undefined, `working set ${prefetch}`);
      }
      set = { handle: null, range: r, record, loaded, shape, refine: refineOptions };
    }
    const sets: ServeSets = {
      record: record !== undefined,
      prefetch: set?.loaded && set.loaded.runs.length > 0 ? toPrefetchRuns(set.loaded.runs) : null,
    };
    const registeredHere = !this.isRegistered(r);
    if (registeredHere) this.register(r, { missing: true });
    let handle: unknown;
    try {
      handle = source.custom !== null ? this.serveCustom(r, source, readahead, sets.record)
        : unit === this.pageSize ? this._serve(r, source, readahead, removed === 'zero', sets)
          : this._serve(r, source, readahead, removed === 'zero', sets, unit);
    } catch (err) {
      // A source that cannot be opened fails here, not at the first fault: leave no trace.
      if (registeredHere) this.unregister(r);
      throw err;
    }
    this.startReader();
    this.updateRef(0); // serving alone does not keep the process alive: only event consumers do
    const served: Served = {
      start: r.start,
      length: r.length,
      stop: () => {
        if (!this.servedHandles.delete(served) || this.isClosed) return;
        const ws = this.servedSets.get(served);
        if (ws) this.autoSave(ws);
        this.servedSets.delete(served);
        if (handle instanceof CustomServer) this.unserveCustom(handle);
        else this._unserve(handle);
      },
    };
    this.servedHandles.add(served);
    if (set) {
      set.handle = handle;
      this.servedSets.set(served, set);
    }
    return served;
  }

  /**
   * Writes the working set recorded so far on a range served with `record` (refined with the
   * set it prefetched, if any) to `path`. docs/working-sets.md.
   */
  saveWorkingSet(range: Range | Region, path: string): void {
    this.checkOpen();
    const r = this.range(range);
    const file = toSetPath(path, 'path')!;
    for (const ws of this.servedSets.values()) {
      if (ws.record !== undefined && ws.range.start === r.start && ws.range.length === r.length) {
        this.writeSet(ws, file);
        return;
      }
    }
    throw codedError('ERR_UFFD_NOT_RECORDING', `No range served with { record } at 0x${r.start.toString(16)} (${r.length} bytes)`);
  }

  private writeSet(ws: ServedSet, path: string): void {
    const custom = ws.handle instanceof CustomServer;
    const recorded = custom ? (ws.handle as CustomServer).recorded() : this._recorded(ws.handle);
    const cursor = custom ? 0 : Math.max(0, this._prefetchCursor(ws.handle));
    const runs = refine(ws.loaded?.runs ?? null, cursor, recorded, ws.range.length / this.pageSize, ws.refine);
    writeWorkingSet(path, { ...ws.shape, generation: (ws.loaded?.generation ?? 0) + 1, runs });
  }

  /** The automatic saves (unregister, stop, close) report a failure as an 'error' event. */
  private autoSave(ws: ServedSet): void {
    if (ws.record === undefined) return;
    try {
      this.writeSet(ws, ws.record);
    } catch (err) {
      process.nextTick(() => this.emit('error', err));
    }
  }

  stats(): Stats {
    this.checkOpen();
    const s = this._stats();
    if (this.sourceCounters !== null) s.source = this.sourceCounters.snapshot();
    return s;
  }

  /** A custom source's range: its faults reach claimFault() instead of the listeners. */
  private serveCustom(r: CheckedRange, source: PageSource, readahead: number, record: boolean): CustomServer {
    this.sourceCounters ??= new SourceCounters();
    // readahead 'adaptive' (0): a fetched window is copied whole, the fewest faults per read;
    // a smaller readahead copies that much per fault and keeps the rest of the window cached.
    const server = new CustomServer(this, r.start, r.length, source.custom!, readahead, this.sourceCounters,
      (err, fault) => this.reportError(err, fault));
    if (record) server.record();
    this.customServers.add(server);
    return server;
  }

  /** Faults still waiting on a stopped custom source go to the handlers, or the fallback. */
  private unserveCustom(server: CustomServer): void {
    this.customServers.delete(server);
    for (const e of server.stop()) {
      if (this.hasPagefaultConsumers) this.dispatch(e);
      else this.answerByFallback(e);
    }
  }

  /**
   * A fault no native source answered: true when a custom source's range holds it (that source
   * answers it, asynchronously).
   */
  private claimFault(e: PageFault): boolean {
    if (this.customServers.size === 0 || e.wp || e.minor) return false;
    for (const server of this.customServers) {
      if (!server.covers(e.address)) continue;
      if (this.faultTimeoutMs !== undefined) this.watch(e);
      server.fault(e);
      return true;
    }
    return false;
  }

  // ---- reading events on the calling thread --------------------------------------------------

  /**
   * Blocks the calling thread until events are queued (or `timeoutMs` passes: then []), and
   * returns up to `max` of them, decoded. For a thread that owns this uffd and answers its
   * faults itself, usually a Worker (docs/fast-handlers.md). Throws ERR_UFFD_READER_ACTIVE while
   * the reader thread runs (a listener, events() or serve() started it): both would race for
   * the same messages. The simulator never blocks: it returns the events already queued.
   */
  readSync(options: ReadSyncOptions = {}): UffdEvent[] {
    this.checkOpen();
    const o = toOptions<ReadSyncOptions>(options, 'options');
    const max = o.max === undefined ? 64 : o.max;
    const timeoutMs = o.timeoutMs === undefined ? -1 : o.timeoutMs;
    if (typeof max !== 'number') throw invalidArgType('options.max', 'of type number', max);
    if (!Number.isInteger(max) || max < 1 || max > 1024) throw outOfRange('options.max', 'an integer from 1 to 1024', max);
    if (typeof timeoutMs !== 'number') throw invalidArgType('options.timeoutMs', 'of type number', timeoutMs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < -1 || timeoutMs > 2 ** 31 - 1) {
      throw outOfRange('options.timeoutMs', '-1 or an integer from 0 to 2 ** 31 - 1', timeoutMs);
    }
    if (this.readerRunning()) throw readerActiveError();
    return this._readSync(max, timeoutMs);
  }

  // ---- dirty tracking and live snapshots (lib/dirty.ts, lib/snapshot.ts) ---------------------

  /**
   * The runs of pages written since the last reset (or since writeProtect armed the range), in
   * address order, adjacent runs merged. Needs WP_ASYNC and a { wp: true } registration.
   */
  dirtyPages(range: Range | Region, options: { reset?: boolean } = {}): DirtyRun[] {
    this.checkOpen();
    const r = this.range(range);
    const { reset } = toDirtyOptions(options);
    checkDirtyTracking(this.features, r, this.registeredMode(r));
    return this._dirtyPages(r.start, r.length, reset);
  }

  /**
   * Writes a point-in-time image of the range to `dest` (a path, or a seekable fd written from
   * its current offset) while other threads keep writing. Registers the range for WP if it is
   * not, and leaves registration and protection as they were when the promise settles.
   */
  async snapshot(range: Range | Region, dest: string | number): Promise<SnapshotResult> {
    this.checkOpen();
    const r = this.range(range);
    const pageSize = range instanceof Region ? range.pageSize : this.pageSize;
    checkAligned(r.start, pageSize, 'range.start');
    checkAligned(r.length, pageSize, 'range.length');
    if (typeof dest !== 'string' && typeof dest !== 'number') throw invalidArgType('dest', 'a file path (string) or an fd (number)', dest);
    if (this.features.includes('WP_ASYNC')) throw wpAsyncError();
    const end = r.start + BigInt(r.length);
    for (const x of this.snapshotting) if (r.start < x.start + BigInt(x.length) && end > x.start) throw busyError(r.start);
    this.snapshotting.add(r);
    let restore: (() => void) | null = null;
    let out: { fd: number; close: () => Promise<void> } | null = null;
    try {
      out = await openDestination(dest);
      this.checkOpen();
      restore = this.registerForSnapshot(r);
      this.startReader(); // the reader thread saves pages before their writes
      const populate = !this.features.includes('WP_UNPOPULATED');
      return toResult(await this._snapshot(r.start, r.length, pageSize, out.fd, populate));
    } finally {
      this.snapshotting.delete(r);
      if (restore && !this.isClosed) restore();
      await out?.close();
    }
  }

  /** Registers `r` for WP unless it is; returns how to put the registration back. */
  private registerForSnapshot(r: CheckedRange): () => void {
    const mode = this.registeredMode(r);
    if (mode === undefined) {
      this.register(r, { wp: true });
      return () => this.unregister(r);
    }
    if (mode & M.REGISTER_WP) return () => undefined;
    // Modes can be added to a registration but never dropped: the way back is unregister.
    const flags = (m: number) => ({ missing: (m & M.REGISTER_MISSING) !== 0, minor: (m & M.REGISTER_MINOR) !== 0 });
    this.unregister(r);
    this.register(r, { ...flags(mode), wp: true });
    return () => {
      this.unregister(r);
      this.register(r, flags(mode));
    };
  }

  /** The UFFDIO_REGISTER mode of a registration of this uffd holding all of `r`. */
  protected registeredMode(r: CheckedRange): number | undefined {
    const end = r.start + BigInt(r.length);
    for (let i = this.registered.length - 1; i >= 0; i--) {
      const x = this.registered[i];
      if (x.start <= r.start && x.start + BigInt(x.length) >= end) return x.mode;
    }
    return undefined;
  }

  // ---- events and lifetime ------------------------------------------------------------------

  /** The events as an async iterator (the same stream the listeners see). */
  events(): AsyncIterableIterator<UffdEvent> {
    this.checkOpen();
    const q = new EventQueue<UffdEvent>((done) => {
      this.queues.delete(done);
      this.consumersChanged(0);
    });
    this.queues.add(q);
    this.consumersChanged(0);
    return q;
  }

  /** Keep the process alive while this uffd has event consumers (the default). */
  ref(): this {
    this.refed = true;
    this.updateRef(0);
    return this;
  }

  /** Let the process exit even though this uffd has event consumers. */
  unref(): this {
    this.refed = false;
    this.updateRef(0);
    return this;
  }

  /** Stops the reader, closes the fd; every thread waiting on a fault runs again. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.unanswered.values()) clearTimeout(w.timer);
    this.unanswered.clear();
    for (const ws of this.servedSets.values()) this.autoSave(ws);
    this.servedSets.clear();
    untrack(this.tracking);
    for (const server of this.customServers) server.stop(); // closing wakes their faults
    this.customServers.clear();
    this._close();
    for (const q of this.queues) q.end();
    this.queues.clear();
    process.nextTick(() => this.emit('close'));
  }

  // ---- for backends -------------------------------------------------------------------------

  /**
   * A page fault a backend read (not answered natively). `sourceFailure` is the errno name when
   * a served range's source could not answer it. With no 'pagefault' consumer the fallback
   * answers it; either way it is answered before any error is reported, since an 'error'
   * nobody listens to throws.
   */
  protected deliverFault(e: PageFault, sourceFailure?: string): void {
    if (sourceFailure === undefined && this.claimFault(e)) return;
    if (!this.hasPagefaultConsumers) {
      this.answerByFallback(e);
      if (sourceFailure) this.reportError(sourceError(sourceFailure), e);
      this.reportError(unhandledError(e), e);
      return;
    }
    this.dispatch(e);
    if (sourceFailure) this.reportError(sourceError(sourceFailure), e);
  }

  /**
   * Runs one delivery of a batch. A listener that throws (or an 'error' nobody listens to) must
   * not cost the rest of the batch its delivery: other threads wait on those faults. The error
   * is rethrown on the next tick, as an uncaught exception (thrown into a native callback, Node
   * would only print a warning, DEP0168, and drop it).
   */
  protected isolated(deliver: () => void): void {
    try {
      deliver();
    } catch (error) {
      process.nextTick(() => { throw error; });
    }
  }

  /** Delivers one event to the listeners and iterators. */
  protected dispatch(e: UffdEvent): void {
    if (e.type === 'pagefault' && this.faultTimeoutMs !== undefined) this.watch(e);
    for (const q of this.queues) q.push(e);
    if (e.type !== 'pagefault') {
      this.emit(e.type, e);
      return;
    }
    try {
      this.emit('pagefault', e);
    } catch (err) {
      // A handler that throws must not leave the faulting thread waiting forever.
      this.answerByFallback(e);
      this.answered(pageOf(e.address, this.pageSize), this.pageSize);
      this.reportError(err as Error, e);
    }
  }

  /** faultTimeoutMs: answer the fault by the fallback if nothing answers its page in time. */
  private watch(e: PageFault): void {
    const page = pageOf(e.address, this.pageSize);
    if (this.unanswered.has(page)) return; // one answer wakes every thread waiting on the page
    const timer = setTimeout(() => {
      this.unanswered.delete(page);
      if (this.isClosed) return;
      let failure: Error | undefined;
      try {
        this.answerByFallback(e);
      } catch (err) {
        failure = err as Error;
      }
      const error = new Error(`No answer to the page fault at 0x${page.toString(16)} within faultTimeoutMs ` +
        `(${this.faultTimeoutMs} ms); ` + (failure ? `the fallback answer failed: ${failure.message}` :
          `answered by the fallback (${e.wp ? 'un-protect' : e.minor ? 'continue' : 'zero page'})`));
      Object.assign(error, { code: 'ERR_UFFD_FAULT_TIMEOUT', cause: failure });
      this.reportError(error, e);
    }, this.faultTimeoutMs);
    timer.unref();
    this.unanswered.set(page, { fault: e, timer });
  }

  /** Runs an answering ioctl; the pages it did (all, or `bytes` of a partial failure) are answered. */
  private answering(start: bigint, length: number, wakes: boolean, op: () => number): number {
    if (this.unanswered.size === 0 || !wakes) return op();
    try {
      const done = op();
      this.answered(start, length);
      return done;
    } catch (err) {
      const bytes = (err as UffdError).bytes;
      // EEXIST wakes nobody: the fault stays watched until a wake (or the timeout) answers it.
      if (typeof bytes === 'number' && bytes > 0) this.answered(start, bytes);
      throw err;
    }
  }

  /** The faults in [start, start + length) were answered: stop their timers. */
  private answered(start: bigint, length: number): void {
    if (this.unanswered.size === 0) return;
    const end = start + BigInt(length);
    if (length / this.pageSize <= this.unanswered.size) {
      for (let p = start; p < end; p += BigInt(this.pageSize)) this.clearWatch(p);
    } else {
      for (const p of [...this.unanswered.keys()]) if (p >= start && p < end) this.clearWatch(p);
    }
  }

  private clearWatch(page: bigint): void {
    const w = this.unanswered.get(page);
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.unanswered.delete(page);
  }

  /** An 'error' event; with no 'error' listener it is thrown, as EventEmitter does. */
  protected reportError(err: Error, fault?: PageFault): void {
    if (fault) (err as Error & { fault?: PageFault }).fault = fault;
    this.emit('error', err);
  }

  /** Answers a fault so that its thread runs again: zero page, un-protect, or continue. */
  protected answerByFallback(e: PageFault): void {
    if (this.isClosed) return;
    const page = e.address - (e.address % BigInt(this.pageSize));
    try {
      if (e.wp) this._writeProtect(page, this.pageSize, 0);
      else if (e.minor) this._continue(page, this.pageSize, 0);
      else this.zeroFill(e.address);
    } catch (err) {
      if ((err as UffdError).code === 'EEXIST') this._wake(page, this.pageSize);
      else if ((err as UffdError).code !== 'ENOENT') throw err;
    }
  }

  /** A zero page at `address`; hugetlb has no UFFDIO_ZEROPAGE, so a huge page of zeros is copied. */
  private zeroFill(address: bigint): void {
    const page = address - (address % BigInt(this.pageSize));
    try {
      this._zeropage(page, this.pageSize, 0);
    } catch (err) {
      if ((err as UffdError).code !== 'EINVAL') throw err;
      const huge = BigInt(HUGE_PAGE_SIZE);
      this._copy(address - (address % huge), new Uint8Array(HUGE_PAGE_SIZE), 0);
    }
  }

  /** Whether an event of `type` has anyone to go to (a listener or an events() iterator). */
  protected hasConsumers(type: UffdEvent['type']): boolean {
    return this.listenerCount(type) > 0 || this.queues.size > 0;
  }

  protected get hasPagefaultConsumers(): boolean {
    return this.listenerCount('pagefault') > 0 || this.queues.size > 0;
  }

  protected abstract _register(start: bigint, length: number, mode: number): bigint;
  protected abstract _unregister(start: bigint, length: number): void;
  protected abstract _copy(dst: bigint, src: Uint8Array, mode: number): number;
  protected abstract _zeropage(start: bigint, length: number, mode: number): number;
  protected abstract _wake(start: bigint, length: number): void;
  protected abstract _writeProtect(start: bigint, length: number, mode: number): void;
  protected abstract _continue(start: bigint, length: number, mode: number): number;
  protected abstract _poison(start: bigint, length: number, mode: number): number;
  protected abstract _move(dst: bigint, src: bigint, length: number, mode: number): number;
  /** zeroRemoved: pages dropped later (REMOVE events) read as zeros (ServeOptions.removed). */
  /** unit: the mapping's page size when it is not the base page (a hugetlb mapping). */
  protected abstract _serve(range: CheckedRange, source: PageSource, readahead: number, zeroRemoved: boolean,
                            sets: ServeSets, unit?: number): unknown;
  protected abstract _unserve(handle: unknown): void;
  /** The first touches recorded on a served range: [firstPage, pageCount, write] triples in order. */
  protected abstract _recorded(handle: unknown): Uint32Array;
  /** Pages of the loaded set the prefetcher went past, in set order; -1 without prefetch. */
  protected abstract _prefetchCursor(handle: unknown): number;
  protected abstract _stats(): Stats;
  protected abstract _readSync(max: number, timeoutMs: number): UffdEvent[];
  /** Whether a reader of this uffd's events runs (readSync must not compete with it). */
  protected readerRunning(): boolean {
    return this.readerStarted;
  }
  /** The written runs of [start, start + length), adjacent runs merged; `reset` re-protects them. */
  protected abstract _dirtyPages(start: bigint, length: number, reset: boolean): DirtyRun[];
  /** Protects, streams and releases the range; the range is registered for WP already. */
  protected abstract _snapshot(start: bigint, length: number, pageSize: number, fd: number,
                               populate: boolean): Promise<RawSnapshotResult>;
  /** Starts delivering events through dispatch(). Called once. */
  protected abstract _startReader(): void;
  protected abstract _setRef(refed: boolean): void;
  protected abstract _close(): void;

  // ---- internals ----------------------------------------------------------------------------

  protected checkOpen(): void {
    if (this.isClosed) throw closedError('userfaultfd');
  }

  private range(value: unknown): CheckedRange {
    if (value instanceof Region) {
      if (value.backend !== this.backend) {
        throw invalidArgType('range', `a Region of the ${this.backend} backend`, value);
      }
      if (value.unmapped) throw closedError('region');
      return { start: value.address, length: value.length };
    }
    return toRange(value, this.pageSize);
  }

  private address(value: unknown, name: string): bigint {
    const a = typeof value === 'object' && value !== null ? this.range(value).start : toAddress(value, name);
    checkAligned(a, this.pageSize, name);
    return a;
  }

  /** Bytes per fault for the native side: 0 adaptive, else a fixed page multiple. */
  private readahead(v: unknown): number {
    if (v === undefined || v === 'adaptive') return 0;
    if (v === false || v === 0) return this.pageSize;
    const n = toLength(v, 'options.readahead');
    checkAligned(n, this.pageSize, 'options.readahead');
    return n;
  }

  /** serve()'s page size: a hugetlb Region's, or options.pageSize (the base or the huge page size). */
  private servedPageSize(range: unknown, r: CheckedRange, pageSize: unknown): number {
    const huge = range instanceof Region && range.hugetlb;
    if (pageSize !== undefined && pageSize !== this.pageSize && pageSize !== HUGE_PAGE_SIZE) {
      throw outOfRange('options.pageSize', `${this.pageSize} or ${HUGE_PAGE_SIZE}`, pageSize);
    }
    if (huge && pageSize === this.pageSize) {
      throw outOfRange('options.pageSize', `${HUGE_PAGE_SIZE} for a hugetlb Region`, pageSize);
    }
    const unit = huge ? HUGE_PAGE_SIZE : (pageSize as number | undefined) ?? this.pageSize;
    if (unit !== this.pageSize) {
      checkAligned(r.start, unit, 'range.start');
      checkAligned(r.length, unit, 'range.length');
    }
    return unit;
  }

  private isRegistered(r: CheckedRange): boolean {
    const end = r.start + BigInt(r.length);
    return this.registered.some((x) => x.start <= r.start && x.start + BigInt(x.length) >= end);
  }

  protected startReader(): void {
    if (this.readerStarted || this.isClosed) return;
    this.readerStarted = true;
    this._startReader();
    // The reader starts ref'd: a serve() alone (no event consumer) must not hold the process.
    this.updateRef(0);
  }

  /** `adding` is 1 while a listener is about to be added (newListener fires before). */
  private consumersChanged(adding: number): void {
    if (this.isClosed) return;
    const n = this.consumerCount() + adding;
    if (n > 0) this.startReader();
    this.updateRef(adding);
  }

  private consumerCount(): number {
    let n = this.queues.size;
    for (const t of ['pagefault', 'fork', 'remap', 'remove', 'unmap']) n += this.listenerCount(t);
    return n;
  }

  private updateRef(adding: number): void {
    if (!this.readerStarted || this.isClosed) return;
    this._setRef(this.refed && this.consumerCount() + adding > 0);
  }
}

function readerActiveError(): Error {
  return codedError('ERR_UFFD_READER_ACTIVE', 'readSync() cannot read this userfaultfd while its reader thread runs ' +
    "(a 'pagefault' or other event listener, events() or serve() started it): both would take the same messages");
}

/** The source's size, which a working set must match; a file that cannot be stat'ed fails as serve() would. */
function sizeOf(source: PageSource): number {
  if (source.custom !== null) {
    if (source.custom.size !== undefined) return source.custom.size;
    throw codedError('ERR_UFFD_SOURCE_SIZE_UNKNOWN', 'serve(): a working set must match its source\'s size: ' +
      'give PageSource.http the object\'s { size } to record one');
  }
  try {
    return sourceSize(source);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw uffdError(err.code ?? 'EIO', 'open', undefined, typeof source.file === 'string' ? source.file : undefined);
  }
}

function sourceError(code: string): Error {
  return uffdError(code, 'UFFDIO_COPY', 0, 'a page source could not answer a fault; the JS handlers were given it');
}

function unhandledError(e: PageFault): Error {
  return codedError('ERR_UFFD_UNHANDLED_FAULT',
    `A page fault at 0x${e.address.toString(16)} had no 'pagefault' listener; answered with a zero page`);
}

function pageOf(address: bigint, pageSize: number): bigint {
  return address - (address % BigInt(pageSize));
}

/** Open options checked before any fd is opened, so that a bad option cannot leak one. */
function checkOpenOptions(options: unknown): Partial<OpenOptions> {
  const o = toOptions<OpenOptions>(options, 'options');
  checkSelfFaultPolicy(o.onSelfFault);
  if (o.userModeOnly !== undefined && typeof o.userModeOnly !== 'boolean') {
    throw invalidArgType('options.userModeOnly', 'of type boolean', o.userModeOnly);
  }
  // The fd is always non-blocking (the reader polls it; readers never block the event loop):
  // the option exists to say so, and asking for a blocking fd is refused, not ignored.
  if (o.nonBlocking !== undefined && o.nonBlocking !== true) throw invalidArgType('options.nonBlocking', 'true or undefined', o.nonBlocking);
  const t = o.faultTimeoutMs;
  if (t !== undefined) {
    if (typeof t !== 'number') throw invalidArgType('options.faultTimeoutMs', 'of type number', t);
    if (!(t > 0) || t > 2 ** 31 - 1) throw outOfRange('options.faultTimeoutMs', '> 0 and <= 2 ** 31 - 1', t);
  }
  return o;
}
