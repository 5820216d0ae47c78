/* eslint max-lines: ["error", 545] -- one cohesive thing: the header says why */
/**
 * Userfaultfd: the public class, a facade. It checks arguments, carries out the ioctls through
 * its backend (the kernel, or the simulator, which supply the `_` operations), and keeps the
 * lifetime: consumers, the reader, ref/unref, close. Three collaborators hold the rest, each in
 * its own file: delivery (faults to listeners, the fallback policy, fault reports), serving
 * (page sources, custom sources, working sets) and tracking (dirty pages, snapshots). Over the
 * usual length because every public method lives here, each a few lines of argument checks.
 */
import { EventEmitter } from 'events';
import { checkOptionKeys, OPTION_KEYS } from '../base/option-keys';
import {
  checkAligned, CheckedRange, checkSelfFaultPolicy, toAddress, toBytes, toExistOk, toFlag, toLength, toOpenOptions,
  toOptions, toReadSyncOptions,
} from '../base/args';
import { constants, FeatureName, IoctlName, ioctlNames } from '../base/constants';
import { closedError, codedError, invalidArgType, outOfRange } from '../base/errors';
import type {
  BackendName, ContinueOptions, CopyOptions, FillOptions, FillResult, MoveOptions, OpenOptions, PageFault, Range, ReadSyncOptions,
  RegisterOptions, RegisterResult, RemapEvent, RemoveEvent, SelfFaultPolicy, ServeOptions, Stats, UnmapEvent,
  WakeOptions, WriteProtectOptions, ZeropageOptions,
} from '../base/types';
import type { DirtyPagesOptions, DirtyRun } from '../sources/dirty';
import type { PageSource } from '../sources/page-source';
import type { RawSnapshotResult, SnapshotResult } from '../sources/snapshot';
import { chooseBackend } from './backend';
import { Delivery } from './delivery';
import { EventQueue, isEventType } from './events';
import { rangeOf, Region } from './region';
import { Registrations } from './registrations';
import { Served, ServeSets, Serving } from './serving';
import type { ImageStore, SharedImage } from './shared-image';
import { Tracking } from './tracking';
import { closeAtExit, forget } from './open-uffds';

const M = constants.modes;

/** What a backend's resolving ioctl returns, asked not to throw EEXIST, when the page was there. */
export const EXISTED = -1;

/** A child forked with EVENT_FORK: its own uffd, for the memory it inherited. */
export interface ForkEvent { type: 'fork'; uffd: Userfaultfd }
/** Every event a uffd reports (the plain-data ones are in base/types.ts; fork carries a uffd). */
export type UffdEvent = PageFault | ForkEvent | RemapEvent | RemoveEvent | UnmapEvent;

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
  /** _withReaderHeld(): 1 while it runs, 2 once something asked for the reader meanwhile. */
  private readerHold = 0;
  private readonly queues = new Set<EventQueue<UffdEvent>>();
  private readonly registrations = new Registrations();
  private readonly atExit: ReturnType<typeof closeAtExit>;
  /** Faults a backend read go here (deliverFault, isolated, report): core/delivery.ts. */
  protected readonly delivery: Delivery;
  private readonly serving: Serving;
  private readonly tracking: Tracking;

  /** Opens a userfaultfd on the chosen backend ('auto': the kernel where it can, else the simulator). */
  static open(options: OpenOptions = {}): Userfaultfd {
    checkOptionKeys(options, OPTION_KEYS.open, 'Userfaultfd.open()');
    const o = toOpenOptions(options);
    return chooseBackend<Userfaultfd>(o.backend).open(o as OpenOptions);
  }

  /**
   * Adopts a userfaultfd fd (received from another process, or a Worker's copy). Duplicates it.
   * `backend` defaults to 'auto' as in open(): the kernel where it serves, else the simulator
   * (whose fake fds can be adopted within the same thread).
   */
  static fromFd(fd: number, options: OpenOptions = {}): Userfaultfd {
    checkOptionKeys(options, OPTION_KEYS.open, 'Userfaultfd.fromFd()');
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    if (!Number.isInteger(fd) || fd < 0) throw outOfRange('fd', 'a non-negative integer', fd);
    const o = toOpenOptions(options);
    return chooseBackend<Userfaultfd>(o.backend).fromFd(fd, o as OpenOptions);
  }

  protected constructor(init: UffdInit) {
    super();
    this.features = Object.freeze([...init.features]);
    this.ioctls = Object.freeze([...init.ioctls]);
    this.pageSize = init.pageSize;
    this.userModeOnly = init.options.userModeOnly === true;
    checkSelfFaultPolicy(init.options.onSelfFault);
    this.selfFaultPolicy = init.options.onSelfFault ?? 'zeropage';
    this.atExit = closeAtExit(this);
    // The collaborators reach the backend's raw operations (protected) through these closures.
    this.delivery = new Delivery({
      uffd: this,
      hasPagefaultConsumers: () => this.hasConsumers('pagefault'),
      publish: (e) => this.publish(e),
      emitError: (err) => this.emit('error', err),
      claim: (e) => this.serving.claim(e),
      writeProtect: (start, length, mode) => this._writeProtect(start, length, mode),
      continue: (start, length, mode) => this._continue(start, length, mode),
      zeropage: (start, length, mode) => this._zeropage(start, length, mode),
      copy: (dst, src, mode) => this._copy(dst, src, mode),
      wake: (start, length) => this._wake(start, length),
    }, init.options.faultTimeoutMs);
    const registering = {
      uffd: this,
      registrations: this.registrations,
      register: (r: CheckedRange, options: RegisterOptions) => this.register(r, options),
      unregister: (r: CheckedRange) => this.unregister(r),
      startReader: () => this.startReader(),
      checkOpen: () => this.checkOpen(),
    };
    this.serving = new Serving({
      ...registering,
      delivery: this.delivery,
      updateRef: () => this.updateRef(0),
      serve: (r, source, readahead, zeroRemoved, sets, unit) => this._serve(r, source, readahead, zeroRemoved, sets, unit),
      serveImage: (r, store, readahead, minor) => this._serveImage(r, store, readahead, minor),
      unserve: (handle) => this._unserve(handle),
      recorded: (handle) => this._recorded(handle),
      installed: (handle) => this._installed(handle),
      fill: (minChunk, maxChunk) => this._fill(minChunk, maxChunk),
    });
    this.tracking = new Tracking({
      ...registering,
      dirtyPages: (start, length, reset) => this._dirtyPages(start, length, reset),
      dirtyOffsets: (start, length, reset) => this._dirtyOffsets(start, length, reset),
      snapshot: (start, length, pageSize, fd, populate) => this._snapshot(start, length, pageSize, fd, populate),
    });
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
    checkOptionKeys(options, OPTION_KEYS.register, 'register()');
    const r = this.range(range);
    const o = toOptions<RegisterOptions>(options, 'options');
    const wp = toFlag(o.wp, 'options.wp');
    const minor = toFlag(o.minor, 'options.minor');
    const missing = o.missing === undefined ? !(wp || minor) : toFlag(o.missing, 'options.missing');
    const mode = (missing ? M.REGISTER_MISSING : 0) | (wp ? M.REGISTER_WP : 0) | (minor ? M.REGISTER_MINOR : 0);
    this.checkOpen();
    this.serving.forgetUnmapped(r);
    const mask = this._register(r.start, r.length, mode);
    this.registrations.add(r, mode);
    return { ioctls: ioctlNames(mask) };
  }

  /**
   * UFFDIO_UNREGISTER: threads waiting on faults in the range retry as ordinary faults. A range
   * another userfaultfd registered (not a fromFd() copy of this one): Linux 6.18 refuses it
   * (EINVAL); older kernels (6.12) unregister it from the other uffd. The package cannot tell a
   * copy of this uffd from another one, so it leaves that to the kernel.
   */
  unregister(range: Range | Region): void {
    const r = this.range(range);
    this.checkOpen();
    this._unregister(r.start, r.length);
    this.delivery.answered(r.start, r.length); // unregistering wakes the waiting threads
    this.serving.unregistered(r);
    this.registrations.removeWithin(r);
  }

  /** UFFDIO_COPY of `src` (a page multiple) to `dst`; returns the bytes copied. */
  copy(dst: bigint | number | Range | Region, src: Uint8Array | ArrayBuffer, options?: CopyOptions): number {
    checkOptionKeys(options, OPTION_KEYS.copy, 'copy()');
    const d = this.address(dst, 'dst');
    const given = toBytes(src, 'src');
    const o = toOptions<CopyOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.COPY_DONTWAKE : 0) | (toFlag(o.wp, 'options.wp') ? M.COPY_WP : 0);
    const existOk = toExistOk(o);
    // After the options: a getter of theirs may have detached `src` (or closed this uffd).
    const bytes = options === undefined ? given : toBytes(src, 'src');
    if (bytes.byteLength === 0) throw outOfRange('src.byteLength', 'a positive multiple of the page size', 0);
    checkAligned(bytes.byteLength, this.pageSize, 'src.byteLength');
    this.checkOpen();
    // The per-fault path: no closure here, or V8 allocates its context on every call (96 bytes).
    const done = this.delivery.watching ? this.copyWatched(d, bytes, mode, existOk) : this._copy(d, bytes, mode, existOk);
    return done !== EXISTED ? done : this.existed(d, bytes.byteLength, (mode & M.COPY_DONTWAKE) === 0);
  }

  private copyWatched(d: bigint, bytes: Uint8Array, mode: number, existOk: boolean): number {
    return this.delivery.answering(d, bytes.byteLength, (mode & M.COPY_DONTWAKE) === 0, () => this._copy(d, bytes, mode, existOk));
  }

  /** errorOnExist: false met EEXIST: the page is there, so its waiting threads may run. */
  private existed(start: bigint, length: number, wakes: boolean): number {
    if (!wakes) return 0;
    this._wake(start, length);
    this.delivery.answered(start, length);
    return 0;
  }

  /** UFFDIO_ZEROPAGE; returns the bytes zeroed. */
  zeropage(range: Range | Region, options?: ZeropageOptions): number {
    checkOptionKeys(options, OPTION_KEYS.zeropage, 'zeropage()');
    const r = this.range(range);
    const o = toOptions<ZeropageOptions>(options, 'options');
    const dontWake = toFlag(o.dontWake, 'options.dontWake');
    const existOk = toExistOk(o);
    this.checkOpen();
    const done = this.delivery.answering(r.start, r.length, !dontWake,
      () => this._zeropage(r.start, r.length, dontWake ? M.ZEROPAGE_DONTWAKE : 0, existOk));
    return done !== EXISTED ? done : this.existed(r.start, r.length, !dontWake);
  }

  /** UFFDIO_WAKE: wakes the threads waiting on faults in the range. */
  wake(range: Range | Region): void {
    const r = this.range(range);
    this.checkOpen();
    this._wake(r.start, r.length);
    this.delivery.answered(r.start, r.length);
  }

  /** UFFDIO_WRITEPROTECT: protect or un-protect (which wakes, unless dontWake). */
  writeProtect(range: Range | Region, options: WriteProtectOptions): void {
    checkOptionKeys(options, OPTION_KEYS.writeProtect, 'writeProtect()');
    const r = this.range(range);
    const o = toOptions<WriteProtectOptions>(options, 'options');
    const protect = o.protect;
    if (typeof protect !== 'boolean') throw invalidArgType('options.protect', 'of type boolean', protect);
    const dontWake = toFlag(o.dontWake, 'options.dontWake');
    const mode = (protect ? M.WRITEPROTECT_WP : 0) | (dontWake ? M.WRITEPROTECT_DONTWAKE : 0);
    this.checkOpen();
    this._writeProtect(r.start, r.length, mode);
    if (!protect && !dontWake) this.delivery.answered(r.start, r.length);
  }

  /** UFFDIO_CONTINUE: maps the page-cache pages of a MINOR range; returns the bytes mapped. */
  continue(range: Range | Region, options?: ContinueOptions): number {
    checkOptionKeys(options, OPTION_KEYS.continue, 'continue()');
    const r = this.range(range);
    const o = toOptions<ContinueOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.CONTINUE_DONTWAKE : 0) | (toFlag(o.wp, 'options.wp') ? M.CONTINUE_WP : 0);
    const existOk = toExistOk(o);
    const wakes = (mode & M.CONTINUE_DONTWAKE) === 0;
    this.checkOpen();
    const done = this.delivery.answering(r.start, r.length, wakes, () => this._continue(r.start, r.length, mode, existOk));
    return done !== EXISTED ? done : this.existed(r.start, r.length, wakes);
  }

  /** UFFDIO_POISON: the pages raise SIGBUS when touched; returns the bytes poisoned. */
  poison(range: Range | Region, options?: WakeOptions): number {
    checkOptionKeys(options, OPTION_KEYS.wake, 'poison()');
    const r = this.range(range);
    const o = toOptions<WakeOptions>(options, 'options');
    const dontWake = toFlag(o.dontWake, 'options.dontWake');
    this.checkOpen();
    return this.delivery.answering(r.start, r.length, !dontWake, () => this._poison(r.start, r.length, dontWake ? M.POISON_DONTWAKE : 0));
  }

  /** UFFDIO_MOVE of `length` bytes from `src` to `dst`; returns the bytes moved. */
  move(dst: bigint | number | Range | Region, src: bigint | number | Range | Region, length: number, options?: MoveOptions): number {
    checkOptionKeys(options, OPTION_KEYS.move, 'move()');
    const d = this.address(dst, 'dst');
    const s = this.address(src, 'src');
    toLength(length, 'length');
    checkAligned(length, this.pageSize, 'length');
    const o = toOptions<MoveOptions>(options, 'options');
    const mode = (toFlag(o.dontWake, 'options.dontWake') ? M.MOVE_DONTWAKE : 0) |
      (toFlag(o.allowSrcHoles, 'options.allowSrcHoles') ? M.MOVE_ALLOW_SRC_HOLES : 0);
    const existOk = toExistOk(o);
    const wakes = (mode & M.MOVE_DONTWAKE) === 0;
    this.checkOpen();
    const done = this.delivery.answering(d, length, wakes, () => this._move(d, s, length, mode, existOk));
    return done !== EXISTED ? done : this.existed(d, length, wakes);
  }

  // ---- serving (core/serving.ts) --------------------------------------------------------------

  /**
   * Answers every missing-page fault in the range from `source`, without JavaScript per fault.
   * Registers the range for missing faults first if this uffd has not. A SharedImage as the
   * source: the range is a clone of it (a private mapping of the whole image, such as another
   * process's received with listenForUffd({ image })), docs/shared-images.md.
   */
  serve(range: Range | Region, source: PageSource | SharedImage, options: ServeOptions = {}): Served {
    checkOptionKeys(options, OPTION_KEYS.serve, 'serve()');
    this.checkOpen();
    const r = this.range(range);
    this.serving.forgetUnmapped(r);
    return this.serving.serve(range, r, source, options); // which checks again past the options
  }

  /**
   * Writes the working set recorded so far on a range served with `record` (refined with the
   * set it prefetched, if any) to `path`. docs/working-sets.md.
   */
  saveWorkingSet(range: Range | Region, path: string): void {
    const r = this.range(range);
    this.checkOpen();
    this.serving.saveWorkingSet(r, path);
  }

  /**
   * Installs in the background every served page with source bytes not in yet (not custom/http
   * ranges), demand faults first; resolves when none is left or the owner has gone. Holds the process.
   */
  fill(options: FillOptions = {}): Promise<FillResult> {
    return this.serving.fill(options);
  }

  stats(): Stats {
    this.checkOpen();
    const s = this._stats();
    const source = this.serving.sourceStats();
    if (source !== null) s.source = source;
    return s;
  }

  // ---- reading events on the calling thread --------------------------------------------------

  /**
   * Blocks the calling thread until events are queued (or `timeoutMs` passes: then []), and
   * returns up to `max` of them, decoded. For a thread that owns this uffd and answers its
   * faults itself, usually a Worker (docs/fast-handlers.md). Throws ERR_UFFD_READER_ACTIVE while
   * the reader thread runs (a listener, events() or serve() started it): both would race for
   * the same messages. The simulator never blocks: it returns the events already queued.
   */
  readSync(options?: ReadSyncOptions): UffdEvent[] {
    checkOptionKeys(options, OPTION_KEYS.readSync, 'readSync()');
    const { max, timeoutMs } = toReadSyncOptions(options);
    this.checkOpen();
    if (this.readerRunning()) throw readerActiveError();
    return this._readSync(max, timeoutMs);
  }

  // ---- dirty tracking and live snapshots (core/tracking.ts) -----------------------------------

  /**
   * The runs of pages written since the last reset (or since writeProtect armed the range), in
   * address order, adjacent runs merged. Needs WP_ASYNC and a { wp: true } registration.
   */
  dirtyPages(range: Range | Region, options: DirtyPagesOptions = {}): DirtyRun[] {
    return this.tracking.dirtyPages(this.range(range), options); // which checks that this uffd is open
  }

  /**
   * The same runs as dirtyPages(), as one Float64Array of [offset, length] pairs: byte offsets
   * from range.start, and byte lengths. No object or bigint per run: the form for a loop that
   * scans every round (docs/dirty-tracking.md).
   */
  dirtyOffsets(range: Range | Region, options: DirtyPagesOptions = {}): Float64Array {
    return this.tracking.dirtyOffsets(this.range(range), options); // which checks that this uffd is open
  }

  /**
   * Writes a point-in-time image of the range to `dest` (a path, or a seekable fd written from
   * its current offset) while other threads keep writing. Registers the range for WP if it is
   * not, and leaves registration and protection as they were when the promise settles.
   */
  async snapshot(range: Range | Region, dest: string | number): Promise<SnapshotResult> {
    const r = this.range(range);
    this.checkOpen();
    return this.tracking.snapshot(r, range instanceof Region ? range.pageSize : this.pageSize, dest);
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
    this.delivery.close();
    this.serving.close();
    forget(this.atExit);
    this._close();
    for (const q of this.queues) q.end();
    this.queues.clear();
    process.nextTick(() => this.emit('close'));
  }

  /** An event's one way out: to the iterators, then the listeners. */
  private publish(e: UffdEvent): void {
    if (this.queues.size > 0) for (const q of this.queues) q.push(e);
    this.emit(e.type, e);
  }

  /**
   * @internal Runs `setUp` (serve() calls, listeners) with the reader held back, then starts it
   * if asked: faults already waiting (an adopted uffd's task faults) are then read once every
   * range is served and answered natively, not claimed from JavaScript (tools/criu-task.ts).
   */
  _withReaderHeld<T>(setUp: () => T): T {
    if (this.readerStarted || this.readerHold !== 0) return setUp();
    this.readerHold = 1;
    try {
      return setUp();
    } finally {
      const wanted = this.readerHold === 2;
      this.readerHold = 0;
      if (wanted) this.startReader();
    }
  }

  protected startReader(): void {
    if (this.readerHold !== 0) this.readerHold = 2;
    if (this.readerStarted || this.isClosed || this.readerHold !== 0) return;
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
    // A fill in progress holds the process, as a pending fs.read does.
    let n = this.queues.size + (this.serving.filling ? 1 : 0);
    for (const t of ['pagefault', 'fork', 'remap', 'remove', 'unmap']) n += this.listenerCount(t);
    return n;
  }

  private updateRef(adding: number): void {
    if (!this.readerStarted || this.isClosed) return;
    this._setRef(this.refed && this.consumerCount() + adding > 0);
  }

  // ---- for backends -------------------------------------------------------------------------

  /** Delivers one event to the listeners and iterators. */
  protected dispatch(e: UffdEvent): void {
    if (e.type === 'pagefault') this.delivery.dispatch(e);
    else this.publish(e);
  }

  /** Whether an event of `type` has anyone to go to (a listener or an events() iterator). */
  protected hasConsumers(type: UffdEvent['type']): boolean {
    return this.listenerCount(type) > 0 || this.queues.size > 0;
  }

  protected abstract _register(start: bigint, length: number, mode: number): bigint;
  protected abstract _unregister(start: bigint, length: number): void;
  // The resolving ioctls return the bytes done; with `existOk`, EXISTED instead of throwing EEXIST.
  protected abstract _copy(dst: bigint, src: Uint8Array, mode: number, existOk?: boolean): number;
  protected abstract _zeropage(start: bigint, length: number, mode: number, existOk?: boolean): number;
  protected abstract _wake(start: bigint, length: number): void;
  protected abstract _writeProtect(start: bigint, length: number, mode: number): void;
  protected abstract _continue(start: bigint, length: number, mode: number, existOk?: boolean): number;
  protected abstract _poison(start: bigint, length: number, mode: number): number;
  protected abstract _move(dst: bigint, src: bigint, length: number, mode: number, existOk?: boolean): number;
  // Serving's and tracking's half: ServingHost (core/serving.ts) and TrackingHost (core/tracking.ts) say what each does.
  protected abstract _serve(range: CheckedRange, source: PageSource, readahead: number, zeroRemoved: boolean,
                            sets: ServeSets, unit?: number): unknown;
  protected abstract _serveImage(range: CheckedRange, store: ImageStore, readahead: number, minor: boolean): unknown;
  protected abstract _unserve(handle: unknown): void;
  protected abstract _fill(minChunk: number, maxChunk: number): Promise<FillResult>;
  protected abstract _recorded(handle: unknown): Uint32Array;
  protected abstract _installed(handle: unknown): Uint8Array | null;
  protected abstract _stats(): Stats;
  protected abstract _readSync(max: number, timeoutMs: number): UffdEvent[];
  /** Whether a reader of this uffd's events runs (readSync must not compete with it). */
  protected readerRunning(): boolean {
    return this.readerStarted;
  }
  protected abstract _dirtyPages(start: bigint, length: number, reset: boolean): DirtyRun[];
  protected abstract _dirtyOffsets(start: bigint, length: number, reset: boolean): Float64Array;
  protected abstract _snapshot(start: bigint, length: number, pageSize: number, fd: number, populate: boolean): Promise<RawSnapshotResult>;
  /** Starts delivering events through dispatch(). Called once. */
  protected abstract _startReader(): void;
  protected abstract _setRef(refed: boolean): void;
  protected abstract _close(): void;

  // ---- internals ----------------------------------------------------------------------------

  protected checkOpen(): void {
    if (this.isClosed) throw closedError('userfaultfd');
  }

  private range(value: unknown): CheckedRange {
    return rangeOf(value, this.backend, this.pageSize);
  }

  private address(value: unknown, name: string): bigint {
    const a = typeof value === 'object' && value !== null ? this.range(value).start : toAddress(value, name);
    checkAligned(a, this.pageSize, name);
    return a;
  }
}

function readerActiveError(): Error {
  return codedError('ERR_UFFD_READER_ACTIVE', 'readSync() cannot read this userfaultfd while its reader thread runs ' +
    "(a 'pagefault' or other event listener, events() or serve() started it): both would take the same messages");
}
