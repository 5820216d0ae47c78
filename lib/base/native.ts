/**
 * The one loader of the native binding, and its exact shape. Loading never throws: on a
 * system without the addon, `binding` is null and `loadError` says why.
 */
import * as path from 'path';

export interface NativeConstants {
  features: Record<string, number>;
  ioctls: Record<string, number>;
  modes: Record<string, number>;
  events: Record<string, number>;
  pagefaultFlags: Record<string, number>;
  /** The reader's 40-byte record (native/reader/fault_reader.h Delivery): its size and field offsets. */
  delivery: { size: number; msg: number; note: number; err: number };
  /** What the native side says about a record (native/reader/fault_reader.h Note). */
  notes: { kernel: number; selfFault: number; sourceFailed: number; readerFailed: number;
    sourceFailedAnswered: number; selfFaultFallback: number; yielded: number };
  /** Serve()'s source kinds and setSelfFaultPolicy()'s values (native/uffd/userfaultfd.h). */
  sourceKinds: { zero: number; buffer: number; fd: number; path: number };
  selfFaultPolicies: { zeropage: number; sigbus: number; source: number };
  /** The errnos this package names (native/uffd/errors.cc): name -> Linux number. */
  errno: Record<string, number>;
  API: number;
  USER_MODE_ONLY: number;
  pageSize: number;
}

export interface NativeStats {
  faults: number; copies: number; bytes: number; wakeups: number;
  p50: number; p99: number;
  prefetched: number; demandFaults: number; prefetchMisses: number;
}

export interface NativeUserfaultfd {
  readonly fd: number;
  register(start: bigint, length: number, mode: number): bigint;
  unregister(start: bigint, length: number): void;
  copy(dst: bigint, src: Uint8Array, mode: number): number;
  copyFromAddress(dst: bigint, src: bigint, length: number, mode: number): number;
  zeropage(start: bigint, length: number, mode: number): number;
  wake(start: bigint, length: number): void;
  writeProtect(start: bigint, length: number, mode: number): void;
  continue(start: bigint, length: number, mode: number): number;
  poison(start: bigint, length: number, mode: number): number;
  move(dst: bigint, src: bigint, length: number, mode: number): number;
  close(): void;
  noop(): void;
  startReader(onBatch: (count: number) => void, scratch: Uint8Array): void;
  ref(): void;
  unref(): void;
  setSelfFaultPolicy(policy: number): void;
  /** This object consumes the uffd's messages: an idle reader of the same uffd steps aside. */
  claimReads(): void;
  /** kind: 0 zero, 1 buffer, 2 file descriptor, 3 file path. */
  serve(start: bigint, length: number, kind: number, source: Uint8Array | number | string | null,
        offset: number, readahead: number, pread: boolean, zeroRemoved?: boolean,
        record?: boolean, prefetch?: Uint32Array | null, unit?: number): number;
  unserve(id: number): boolean;
  /** [firstPage, pageCount, write] triples recorded on a served range, in first-touch order. */
  recorded(id: number): Uint32Array;
  /** Pages of the prefetched set gone past, in set order; -1 without prefetch. */
  prefetchCursor(id: number): number;
  stats(): NativeStats;
  /** Blocks the calling thread; reads at most `max` uffd_msg (32 bytes each) into scratch; returns the count. */
  readSync(scratch: Uint8Array, max: number, timeoutMs: number): number;
  /** copy() and wake() as plain Node-API methods (native/uffd/fast_ioctl.cc): the per-fault calls. */
  copyFast(dst: bigint, src: Uint8Array, mode: number): number;
  wakeFast(start: bigint, length: number): void;
  /** A live snapshot (native/tracking/snapshot_writer.h); onDone is called once, on the JS thread. */
  snapshot(start: bigint, length: number, pageSize: number, destFd: number, populate: boolean,
           onDone: (err: Error | null, result?: { bytes: number; savedBeforeWrite: number; p50: number; p99: number }) => void): void;
  snapshotEnd(start: bigint): void;
}

export interface NativeRegion {
  readonly address: bigint;
  readonly length: number;
  readonly fd: number;
  readonly buffer: ArrayBuffer;
  dontneed(offset: number, length: number): void;
  protect(offset: number, length: number, prot: number): void;
  unmap(): void;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Uint8Array): Promise<void>;
  residentPages(): number;
}

/** One report of the fd-passing listener thread (native/fdpass/fdpass.cc). */
export type NativeListenEvent =
  | { type: 'accept'; conn: number; pid: number; uid: number; gid: number }
  | { type: 'data'; conn: number; data: Buffer; fds: number[] }
  | { type: 'end'; conn: number }
  | { type: 'error'; conn: number; errno: number; code: string };

export interface NativeFdListener {
  close(): void;
  ref(): void;
  unref(): void;
  /** Stop reading the connection; only its hang-up is reported from now on. */
  release(conn: number): void;
  /** Close the connection now. */
  drop(conn: number): void;
  /** Close received fds JS is done with; the listener closes the rest when it closes. */
  closeReceived(fds: number[]): void;
}

export interface FdPassBinding {
  sendFd(socketPath: string, fd: number, payload: Uint8Array, timeoutMs: number): void;
  /** Whether a process listens at the socket path (a non-blocking connect(2) that is not refused). */
  socketListening(socketPath: string): boolean;
  FdListener: new (socketPath: string, backlog: number, readSize: number,
    onEvents: (events: NativeListenEvent[]) => void, mode?: number) => NativeFdListener;
}

export interface Binding extends FdPassBinding {
  supported: true;
  /** localMemory: the uffd was opened here, for this process's own memory (not received or forked). */
  /** dup: adopt a duplicate of fd, made by the constructor (the caller keeps fd). */
  Userfaultfd: new (fd: number, features: number, localMemory?: boolean, dup?: boolean) => NativeUserfaultfd;
  Region: new (length: number, shared: boolean, hugetlb: boolean, aliasFd?: number) => NativeRegion;
  constants: NativeConstants;
  setErrorClass(cls: new (...args: never[]) => Error): void;
  openSyscall(userModeOnly: boolean): number;
  openDevice(userModeOnly: boolean): number;
  apiHandshake(fd: number, features: number): { api: number; features: number; ioctls: bigint };
  closeFd(fd: number): void;
  gettid(): number;
  /** bench/: `count` UFFDIO_COPY (op 0) or UFFDIO_WAKE (op 1) in a C loop in this process; ns. */
  benchIoctlLoop(fd: number, op: number, start: bigint, count: number, src?: Uint8Array): number;
  /** One PAGEMAP_SCAN of the written pages (native/tracking/dirty_tracker.h); out holds 3 words per run. */
  pagemapScan(start: bigint, end: bigint, reset: boolean, out: BigUint64Array): { count: number; walkEnd: bigint };
  /** The calling thread's worker_threads.threadId, for releaseThreads. */
  setThreadId(threadId: number): void;
  /** Unregisters the ranges of the uffds of thread `threadId` (every thread but `except` when < 0). */
  releaseThreads(threadId: number, except: number): number;
}

function load(): { binding: Binding | null; loadError: string | null } {
  try {
    // USERFAULTFD_ADDON: an addon built elsewhere (the sanitizer builds of scripts/sanitize.sh).
    const override = process.env.USERFAULTFD_ADDON;
    /* eslint-disable @typescript-eslint/no-require-imports -- the loader resolves the addon at run time */
    const mod = override ? require(path.resolve(override)) : require('node-gyp-build')(path.join(__dirname, '..', '..'));
    /* eslint-enable @typescript-eslint/no-require-imports */
    if (mod && mod.supported === true) return { binding: mod as Binding, loadError: null };
    return { binding: null, loadError: 'the addon was built without userfaultfd support (not Linux)' };
  } catch (e) {
    return { binding: null, loadError: (e as Error).message };
  }
}

const loaded = load();
export const binding: Binding | null = loaded.binding;
export const loadError: string | null = loaded.loadError;
