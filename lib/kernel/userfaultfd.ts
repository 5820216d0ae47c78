/** Userfaultfd over the real kernel (native/uffd/userfaultfd.cc and native/reader/fault_reader.cc). */
import * as fs from 'fs';
import { CheckedRange, toFeatureNames } from '../base/args';
import { constants, featureMask, featureNames, ioctlNames } from '../base/constants';
import { DirtyRun, foreignMemoryError } from '../sources/dirty';
import { closedError, errnoName, invalidArgType, UffdError, uffdError } from '../base/errors';
import type { RawSnapshotResult } from '../sources/snapshot';
import { binding, FastMethods, NativeUserfaultfd } from '../base/native';
import { PageSource } from '../sources/page-source';
import type { FillResult, OpenOptions, Stats } from '../base/types';
import { selfFaultError } from '../core/delivery';
import type { ServeSets } from '../core/serving';
import { nativeSetOptions } from '../sources/set-loading';
import type { ImageStore } from '../core/shared-image';
import type { KernelImageStore } from './image-store';
import { UffdEvent, Userfaultfd } from '../core/userfaultfd';
import { kernelOffer, openKernelFd, userModeOnlyFor } from './probe';

const RECORD = constants.delivery.size;
const MSG = constants.delivery.msg;
const RECORDS_PER_CALL = 256;
const UFFD_MSG_SIZE = 32; // struct uffd_msg: readSync's records
const NOTE = constants.notes;
const EV = constants.events;
const PF = constants.pagefaultFlags;
const POLICY = constants.selfFaultPolicies;
const KIND = constants.sourceKinds;
/** The events that change the memory's layout (orderedAnswers counts them). */
const LAYOUT_EVENTS = new Set([EV.FORK, EV.REMAP, EV.REMOVE, EV.UNMAP]);
/** Features whose events stop the thread that caused them until the message is read. */
const WAITING_EVENTS = constants.features.EVENT_FORK | constants.features.EVENT_REMAP |
  constants.features.EVENT_REMOVE | constants.features.EVENT_UNMAP;

/**
 * What the reader thread's callback reaches the uffd through: strongly while it keeps the
 * process alive (ref'd, with consumers: a listening handle), weakly otherwise, so that a uffd
 * dropped without close() (after serve(), or unref()) is collected and its finalizer closes it.
 * The reader's queue holds its callback strongly, and the callback must not hold `this`.
 */
interface ReaderLink {
  strong: KernelUserfaultfd | null;
  readonly weak: WeakRef<KernelUserfaultfd>;
}
function batchCallback(link: ReaderLink): (count: number) => void {
  return (count) => (link.strong ?? link.weak.deref())?.onBatch(count);
}

/**
 * A Worker whose own JS thread waits on a fault of its own uffd cannot run its cleanup when it
 * is terminated (the thread is stopped in the kernel), and Node then waits for it forever, in
 * terminate() and in process.exit(). The thread that made the Worker (or the main thread, at
 * exit) unregisters that Worker's ranges, which wakes it; its own teardown then closes its uffds.
 * Only Workers made by a thread that has loaded this package are seen.
 */
function watchWorkerTeardown(): void {
  if (!binding) return;
  const native = binding;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only where the addon is
  const { threadId, isMainThread } = require('worker_threads') as typeof import('worker_threads');
  native.setThreadId(threadId);
  process.on('worker', (worker: import('worker_threads').Worker) => {
    const terminate = worker.terminate;
    const id = worker.threadId;
    worker.terminate = function (this: typeof worker, ...args: Parameters<typeof terminate>) {
      const done = terminate.apply(this, args);
      native.releaseThreads(id, -1);
      return done;
    };
  });
  if (isMainThread) process.on('exit', () => native.releaseThreads(-1, threadId));
}
watchWorkerTeardown();

export class KernelUserfaultfd extends Userfaultfd {
  readonly backend = 'native' as const;
  /** How the fd was opened: the userfaultfd syscall or /dev/userfaultfd (undefined: adopted). */
  readonly via: 'syscall' | 'dev-userfaultfd' | undefined;
  private readonly handle: NativeUserfaultfd;
  /** The per-fault calls, bound to this uffd (no lookup of `this` in the binding). */
  private readonly fastCopy: FastMethods['copy'];
  private readonly fastWake: FastMethods['wake'];
  private readonly featureBits: number;
  private readonly ioctlBits: bigint;
  private readonly fdNumber: number;
  private scratch: Uint8Array | null = null;
  private view: DataView | null = null;
  private readonly link: ReaderLink = { strong: null, weak: new WeakRef(this) };
  private nativeReader = false;
  /** A consumer (listener, events(), serve()) started the reader, not only WAITING_EVENTS. */
  private consumerReader = false;
  /** Pages whose faults the event-only reader read with nobody to give them to: woken (and so
   * raised again) once a consumer comes, or released by close(). */
  private readonly held = new Set<bigint>();
  /** readSync's buffer of raw uffd_msg, kept between calls (grown to the largest `max`). */
  private syncScratch: Uint8Array | null = null;
  /** fill() in progress: settled by the reader's 'filled' note, or by close(). */
  /** orderedAnswers: copy/zeropage pass the layout events the listeners have been given. */
  private ordered = false;
  private layoutSeen = 0;
  /** Ranges served natively (serve(), or a fork's inheritance): faults JS sees may be theirs. */
  private nativeRanges = 0;
  private fillWaiter: { resolve: (r: FillResult) => void; reject: (e: Error) => void; from: number } | null = null;
  private syncView: DataView | null = null;

  /** Opened here, for this process's own memory: only then does /proc/self/pagemap describe it. */
  private readonly localMemory: boolean;

  /** `readsEvents`: this object opened the uffd (open(), a fork event), so it reads the events
   * that block their callers (WAITING_EVENTS) from now on, listener or not. */
  constructor(handle: NativeUserfaultfd, featureBits: number, ioctls: bigint, options: OpenOptions,
              via?: 'syscall' | 'dev-userfaultfd', localMemory = false, readsEvents = false) {
    super({ features: featureNames(featureBits), ioctls: ioctlNames(ioctls), pageSize: constants.pageSize, options });
    this.handle = handle;
    ({ copy: this.fastCopy, wake: this.fastWake } = handle.fastMethods());
    this.featureBits = featureBits;
    this.ioctlBits = ioctls;
    this.fdNumber = handle.fd;
    this.via = via;
    this.localMemory = localMemory;
    if (options.orderedAnswers === true) {
      this.ordered = true;
      handle.setOrdered();
    }
    if (readsEvents && (featureBits & WAITING_EVENTS) !== 0) {
      this.runReader();
      this.handle.unref(); // reading events alone does not hold the process
    }
  }

  get fd(): number {
    return this.closed ? -1 : this.fdNumber;
  }

  /** The bare binding call, for measuring the binding's own overhead. */
  noop(): void {
    this.handle.noop();
  }

  protected _register(start: bigint, length: number, mode: number): bigint {
    return this.handle.register(start, length, mode);
  }
  protected _unregister(start: bigint, length: number): void {
    this.handle.unregister(start, length);
  }
  protected _copy(dst: bigint, src: Uint8Array, mode: number, existOk = false): number {
    return this.ordered ? this.handle.copy(dst, src, mode, this.layoutSeen, existOk) : this.fastCopy(dst, src, mode, existOk);
  }
  protected _zeropage(start: bigint, length: number, mode: number, existOk = false): number {
    return this.ordered ? this.handle.zeropage(start, length, mode, existOk, this.layoutSeen)
      : this.handle.zeropage(start, length, mode, existOk);
  }
  protected _wake(start: bigint, length: number): void {
    this.fastWake(start, length);
  }
  protected _writeProtect(start: bigint, length: number, mode: number): void {
    this.handle.writeProtect(start, length, mode);
  }
  protected _continue(start: bigint, length: number, mode: number, existOk = false): number {
    return this.handle.continue(start, length, mode, existOk);
  }
  protected _poison(start: bigint, length: number, mode: number): number {
    return this.handle.poison(start, length, mode);
  }
  protected _move(dst: bigint, src: bigint, length: number, mode: number, existOk = false): number {
    return this.handle.move(dst, src, length, mode, existOk);
  }
  protected _serve(r: CheckedRange, source: PageSource, readahead: number, zeroRemoved: boolean, sets: ServeSets,
                   unit = 0): unknown {
    const kind = source.kind === 'zero' ? KIND.zero : source.kind === 'buffer' ? KIND.buffer
      : typeof source.file === 'number' ? KIND.fd : KIND.path;
    const src = source.kind === 'buffer' ? source.bytes : source.kind === 'file' ? source.file : null;
    const runs = source.runs === null ? undefined
      : BigUint64Array.from(source.runs.flatMap((x) => [BigInt(x.offset), BigInt(x.length), BigInt(x.sourceOffset)]));
    let id: number;
    try {
      id = this.handle.serve(r.start, r.length, kind, src, source.offset, readahead, source.mode === 'pread',
        zeroRemoved, sets.record, sets.prefetch, unit,
        { eager: sets.eager, window: sets.window, pagesFd: sets.pages?.fd ?? -1, pagesOffset: sets.pages?.offset ?? 0, ...nativeSetOptions(sets.file, sets.pagesLater) },
        runs, sets.follow, source.id);
    } catch (e) {
      // The runs are checked in C++ (SetOrder::FromWords): a loop here would delay the first byte.
      const bad = /^working set run (\d+)/.exec((e as Error).message);
      throw bad ? sets.corrupt(`bad run ${bad[1]}`) : e;
    }
    this.nativeRanges++;
    return id;
  }
  protected _serveImage(r: CheckedRange, store: ImageStore, readahead: number, minor: boolean): unknown {
    const s = store as KernelImageStore;
    // This process's memory can be checked; another's was mapped by the client (lib/tools/image-client.ts).
    if (this.localMemory) s.checkMapping(r);
    const id = this.handle.serveImage(r.start, r.length, s.handle, readahead, minor);
    this.nativeRanges++;
    return id;
  }
  protected _fill(minChunk: number, maxChunk: number): Promise<FillResult> {
    return new Promise((resolve, reject) => {
      this.fillWaiter = { resolve, reject, from: this.handle.stats().filled };
      this.handle.startFill(minChunk, maxChunk);
    });
  }
  protected _recorded(handle: unknown): Uint32Array {
    return this.handle.recorded(handle as number);
  }
  protected _installed(handle: unknown): Uint8Array | null {
    return this.handle.installed(handle as number);
  }
  protected _unserve(handle: unknown): void {
    this.handle.unserve(handle as number);
    this.nativeRanges--;
  }
  protected _stats(): Stats {
    const s = this.handle.stats();
    return {
      faults: s.faults, copies: s.copies, bytes: s.bytes, wakeups: s.wakeups, latencyNs: { p50: s.p50, p99: s.p99 },
      prefetched: s.prefetched, filled: s.filled, demandFaults: s.demandFaults, prefetchMisses: s.prefetchMisses,
    };
  }
  protected _dirtyPages(start: bigint, length: number, reset: boolean): DirtyRun[] {
    return runsOf(start, this._dirtyOffsets(start, length, reset));
  }
  protected _dirtyOffsets(start: bigint, length: number, reset: boolean): Float64Array {
    if (!this.localMemory) throw foreignMemoryError();
    return binding!.pagemapScanRuns(start, start + BigInt(length), reset);
  }
  protected _snapshot(start: bigint, length: number, pageSize: number, fd: number, populate: boolean): Promise<RawSnapshotResult> {
    return new Promise((resolve, reject) => {
      this.handle.snapshot(start, length, pageSize, fd, populate, (err, result) => {
        if (!this.closed) this.handle.snapshotEnd(start);
        if (err) reject(err);
        else resolve(result!);
      });
    });
  }
  protected _startReader(): void {
    this.consumerReader = true;
    // The reader first, then the claim: an idle reader of the same uffd elsewhere steps aside as
    // soon as the claim is made, and until this one runs nobody would read the uffd's events (a
    // FORK event then keeps a forking thread waiting, and this thread may be waiting on it:
    // docs/design.md, "Threads").
    this.runReader();
    this.handle.claimReads();
    // Faults held while nobody consumed them run again, to be served or delivered now.
    this.wakeHeld();
  }
  private wakeHeld(): void {
    for (const page of this.held) this.handle.wake(page, this.pageSize);
    this.held.clear();
  }
  private runReader(): void {
    if (this.nativeReader) return;
    this.nativeReader = true;
    this.scratch = new Uint8Array(RECORD * RECORDS_PER_CALL);
    this.view = new DataView(this.scratch.buffer);
    this.handle.setSelfFaultPolicy(POLICY[this.selfFaultPolicy]);
    this.handle.startReader(batchCallback(this.link), this.scratch);
  }
  /** Also the reader that WAITING_EVENTS features start at open(), with no consumer. */
  protected override readerRunning(): boolean {
    return super.readerRunning() || this.nativeReader;
  }
  protected _readSync(max: number, timeoutMs: number): UffdEvent[] {
    if (this.syncScratch === null || this.syncScratch.byteLength < max * UFFD_MSG_SIZE) {
      this.syncScratch = new Uint8Array(max * UFFD_MSG_SIZE);
      this.syncView = new DataView(this.syncScratch.buffer);
    }
    const n = this.handle.readSync(this.syncScratch, max, timeoutMs);
    // Sized once: growing by push() allocates a 17-slot store for the common batch of one.
    const events = new Array<UffdEvent>(n);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const e = this.decode(this.syncView!, i * UFFD_MSG_SIZE);
      if (e !== null) events[kept++] = e;
    }
    events.length = kept;
    return events;
  }
  protected _setRef(refed: boolean): void {
    this.link.strong = refed ? this : null;
    if (refed) this.handle.ref();
    else this.handle.unref();
  }
  protected _close(): void {
    this.handle.close();
    const w = this.fillWaiter;
    this.fillWaiter = null;
    // On the next tick: a close() at process exit leaves no rejection behind to report.
    if (w !== null) process.nextTick(() => w.reject(closedError('userfaultfd')));
  }

  /** JS thread: `count` deliveries are in the scratch buffer. */
  onBatch(count: number): void {
    // Delivery.isolated()'s rule without its closure, one per fault until TurboFan inlines it.
    for (let i = 0; i < count && !this.closed; i++) {
      try { this.deliver(i * RECORD); } catch (error) { this.delivery.rethrowLater(error); }
    }
  }

  /** JS thread: one delivery record at offset `o` of the scratch buffer. */
  private deliver(o: number): void {
    const v = this.view!;
    const note = v.getInt32(o + constants.delivery.note, true);
    const err = v.getInt32(o + constants.delivery.err, true);
    if (note === NOTE.yielded) {
      // A consumer elsewhere in the process (a fromFd duplicate, a Worker's readSync) claimed
      // the uffd: the faults held here fault again, for it to read.
      this.wakeHeld();
      return;
    }
    if (note === NOTE.filled) {
      const w = this.fillWaiter;
      this.fillWaiter = null;
      if (w === null) return;
      if (err === 0 || err === constants.errno.ESRCH) {
        w.resolve({ pages: this.handle.stats().filled - w.from, ownerGone: err !== 0 });
      } else {
        w.reject(uffdError(errnoName(err), 'UFFDIO_COPY', undefined, 'fill(): a page source could not be read'));
      }
      return;
    }
    if (note === NOTE.readerFailed) {
      this.delivery.report(uffdError(errnoName(err), 'read', undefined, 'the fault reader stopped'));
      return;
    }
    const type = v.getUint8(o + MSG);
    if (note === NOTE.kernel && type !== EV.PAGEFAULT && LAYOUT_EVENTS.has(type)) this.layoutSeen++;
    const e = this.decode(v, o + MSG);
    if (e === null) return;
    if (e.type === 'pagefault' && note === NOTE.kernel && this.nativeRanges > 0 && !e.wp && !e.minor) {
      // Read before its range was served (serve() starts the reader; a live peer may fault
      // between two serve() calls): answered from the ranges as they are now.
      const page = e.address - (e.address % BigInt(this.pageSize));
      const r = this.handle.answerServed(page);
      if (r === 1) return;
      if (r === 2) {
        this.handle.wake(page, this.pageSize); // it faults again once the reader has read the event
        return;
      }
      if (r < 0) {
        this.delivery.deliverFault(e, errnoName(-r));
        return;
      }
    }
    if ((note === NOTE.selfFault || note === NOTE.selfFaultFallback) && e.type === 'pagefault') {
      this.delivery.report(selfFaultError(e, this.selfFaultPolicy, err, note === NOTE.selfFaultFallback));
      return;
    }
    if (note === NOTE.sourceFailedAnswered && e.type === 'pagefault') {
      // The JS thread's own fault in a served range whose source failed: the reader answered
      // it by onSelfFault (it could not wait for JavaScript); only report it.
      this.delivery.report(uffdError(errnoName(err), 'UFFDIO_COPY', 0,
        `a page source could not answer a fault of the JavaScript thread; answered by onSelfFault '${this.selfFaultPolicy}'`), e);
      return;
    }
    if (e.type === 'pagefault' && !this.consumerReader) {
      // Read only so that non-cooperative events cannot block their callers: the fault waits,
      // as it would with no reader, for a consumer (or close()).
      this.held.add(e.address - (e.address % BigInt(this.pageSize)));
      return;
    }
    if (e.type === 'pagefault') this.delivery.deliverFault(e, note === NOTE.sourceFailed ? errnoName(err) : undefined);
    else this.dispatch(e);
  }

  private decode(v: DataView, o: number): UffdEvent | null {
    const type = v.getUint8(o);
    switch (type) {
      case EV.PAGEFAULT: {
        const flags = v.getUint32(o + 8, true); // the defined bits are all in the low word
        const address = v.getBigUint64(o + 16, true);
        const write = (flags & PF.WRITE) !== 0;
        const wp = (flags & PF.WP) !== 0;
        const minor = (flags & PF.MINOR) !== 0;
        // Whole literals: a property added afterwards costs every event an out-of-object store.
        if ((this.featureBits & constants.features.THREAD_ID) === 0) return { type: 'pagefault', address, write, wp, minor, flags };
        return { type: 'pagefault', address, write, wp, minor, tid: v.getUint32(o + 24, true), flags };
      }
      case EV.FORK: {
        const fd = v.getUint32(o + 8, true);
        if (!this.hasConsumers('fork')) {
          this.handle.dropFork(fd);
          binding!.closeFd(fd); // nobody takes the child's uffd: close it now, not at GC
          return null;
        }
        // The kernel copies the parent's context (features and all) into the child's fd, so
        // the ioctls UFFDIO_API answered for the parent hold for it too. Ranges served with
        // { follow } are the child's too, as they were at the fork: before its reader starts.
        const native = new binding!.Userfaultfd(fd, this.featureBits);
        const inherited = this.handle.adoptFork(fd, native);
        const child = new KernelUserfaultfd(native, this.featureBits, this.ioctlBits,
          { onSelfFault: this.selfFaultPolicy, orderedAnswers: this.ordered }, undefined, false, true);
        child.nativeRanges = inherited;
        return { type: 'fork', uffd: child };
      }
      case EV.REMAP:
        return { type: 'remap', from: v.getBigUint64(o + 8, true), to: v.getBigUint64(o + 16, true), length: Number(v.getBigUint64(o + 24, true)) };
      case EV.REMOVE:
        return { type: 'remove', start: v.getBigUint64(o + 8, true), end: v.getBigUint64(o + 16, true) };
      case EV.UNMAP:
        return { type: 'unmap', start: v.getBigUint64(o + 8, true), end: v.getBigUint64(o + 16, true) };
      default:
        return null;
    }
  }
}

/**
 * Every written run of [start, start + length) as objects (dirtyPages). The native scan returns
 * [offset, length] pairs in one Float64Array (dirtyOffsets' form); the addresses are added as
 * numbers (user-space addresses are below 2^53): BigInt arithmetic per run cost 30x the scan.
 */
function runsOf(start: bigint, offsets: Float64Array): DirtyRun[] {
  const base = Number(start);
  const runs = new Array<DirtyRun>(offsets.length / 2);
  for (let i = 0; i < runs.length; i++) runs[i] = { start: BigInt(base + offsets[2 * i]), length: offsets[2 * i + 1] };
  return runs;
}

/** Userfaultfd.open on the kernel. */
export function openKernel(options: OpenOptions): KernelUserfaultfd {
  const wanted = toFeatureNames(options.features);
  const offer = kernelOffer();
  for (const name of wanted) {
    if ((offer.features & constants.features[name]) === 0) {
      const e = uffdError('EINVAL', 'UFFDIO_API', undefined, `this kernel does not support the feature ${name}`);
      e.feature = name;
      throw e;
    }
  }
  // THREAD_ID costs nothing and lets the reader recognise faults raised by the JS thread itself.
  let mask = featureMask(wanted);
  if (offer.features & constants.features.THREAD_ID && !wanted.includes('THREAD_ID')) mask += constants.features.THREAD_ID;
  const userModeOnly = userModeOnlyFor(options.userModeOnly);
  const { fd, via } = openKernelFd(userModeOnly);
  let reply;
  try {
    reply = binding!.apiHandshake(fd, mask);
  } catch (e) {
    binding!.closeFd(fd);
    if ((e as UffdError).code === 'EPERM' && wanted.includes('EVENT_FORK')) {
      (e as Error).message += ' (EVENT_FORK needs CAP_SYS_PTRACE: run with it, or do without fork events)';
    }
    throw e;
  }
  return new KernelUserfaultfd(new binding!.Userfaultfd(fd, mask, true), mask, reply.ioctls, { ...options, userModeOnly }, via, true, true);
}

/** Userfaultfd.fromFd on the kernel: a duplicate of `fd`, its features read back from fdinfo. */
export function adoptKernelFd(fd: number, options: OpenOptions): KernelUserfaultfd {
  let link: string;
  try {
    link = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    throw invalidArgType('fd', 'an open file descriptor', fd);
  }
  if (link !== 'anon_inode:[userfaultfd]') throw invalidArgType('fd', 'a userfaultfd', link);
  // Options are checked before the dup: a bad one must not leak an fd (and with it the uffd,
  // whose faulting threads would then wait forever).
  let features = options.features ? featureMask(toFeatureNames(options.features)) : 0;
  let ioctls = 0n;
  try {
    const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const m = /^API:\s*([0-9a-f]+):([0-9a-f]+):([0-9a-f]+)/m.exec(info);
    if (m) {
      features = parseInt(m[2], 16) & 0x7fffffff; // bit 31 marks the handshake done
      ioctls = BigInt('0x' + m[3]);
    }
  } catch {
    // No fdinfo (an old kernel, a sandbox): the caller's features stand.
  }
  // The native object makes the dup itself: a Worker terminated between a dup made here and
  // the object that owns it would leak the dup (no JS runs to close it).
  const native = new binding!.Userfaultfd(fd, features, false, true);
  try {
    return new KernelUserfaultfd(native, features, ioctls, options);
  } catch (e) {
    native.close();
    throw e;
  }
}
