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
    sourceFailedAnswered: number; selfFaultFallback: number; yielded: number; filled: number };
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
  /** Pages the background fill installed (startFill). */
  filled: number;
}

/** One uffd's per-fault calls; they throw once it is closed. */
export interface FastMethods {
  /** Bytes copied; with `existOk`, -1 (EXISTED), not a thrown EEXIST, when the page was there. */
  copy(dst: bigint, src: Uint8Array, mode: number, existOk: boolean): number;
  wake(start: bigint, length: number): void;
}

export interface NativeUserfaultfd {
  readonly fd: number;
  register(start: bigint, length: number, mode: number): bigint;
  unregister(start: bigint, length: number): void;
  /**
   * seen: with setOrdered(), the layout events JS has handled (EAGAIN while the reader has read
   * more). existOk: as FastMethods.copy's.
   */
  copy(dst: bigint, src: Uint8Array, mode: number, seen?: number, existOk?: boolean): number;
  copyFromAddress(dst: bigint, src: bigint, length: number, mode: number): number;
  // The resolving ioctls: bytes done. `existOk`: -1 (EXISTED), not a thrown EEXIST, when the
  // page was there (nothing done, nothing woken: lib/ wakes). `seen`: see copy().
  zeropage(start: bigint, length: number, mode: number, existOk?: boolean, seen?: number): number;
  /** copy() and zeropage() given `seen` are ordered with the reader's reads of layout events from now on. */
  setOrdered(): void;
  wake(start: bigint, length: number): void;
  writeProtect(start: bigint, length: number, mode: number): void;
  continue(start: bigint, length: number, mode: number, existOk?: boolean): number;
  poison(start: bigint, length: number, mode: number): number;
  move(dst: bigint, src: bigint, length: number, mode: number, existOk?: boolean): number;
  close(): void;
  noop(): void;
  startReader(onBatch: (count: number) => void, scratch: Uint8Array): void;
  ref(): void;
  unref(): void;
  setSelfFaultPolicy(policy: number): void;
  /** This object consumes the uffd's messages: an idle reader of the same uffd steps aside. */
  claimReads(): void;
  /** Whether the JS thread may read the uffd itself (the default); returns whether it now does.
   * For the benchmarks, which time the reader thread's hop beside it (docs/threads-and-deadlock.md). */
  setJsReads(allowed: boolean): boolean;
  /**
   * kind: 0 zero, 1 buffer, 2 file descriptor, 3 file path. runs: the source seen sparse,
   * [at, length, offset] triples. follow: moved by REMAP, cut by UNMAP, inherited at a fork.
   * sourceId: file sources served again under one id share one native source.
   */
  serve(start: bigint, length: number, kind: number, source: Uint8Array | number | string | null,
        offset: number, readahead: number, pread: boolean, zeroRemoved?: boolean,
        record?: boolean, prefetch?: Uint32Array | null, unit?: number,
        prefetchOptions?: { eager: boolean; window: number; pagesFd: number; pagesOffset: number },
        runs?: BigUint64Array, follow?: boolean, sourceId?: number): number;
  /** A clone of a shared image (native/sources/shared_image.h); lib/ checked the mapping. */
  serveImage(start: bigint, length: number, image: NativeImage, readahead: number, minor: boolean): number;
  /** A fault read before its range was served, answered now: 0 not served, 1 answered, 2 wake it (an event is unread), -errno failed. */
  answerServed(address: bigint): number;
  /** Fill every served range's missing source pages on the reader thread (a 'filled' note ends it). */
  startFill(minChunk: number, maxChunk: number): void;
  /** A fork child's uffd takes the following ranges parked for it; returns how many. */
  adoptFork(childFd: number, child: NativeUserfaultfd): number;
  /** The fork child's fd was closed without adoptFork. */
  dropFork(childFd: number): void;
  unserve(id: number): boolean;
  /** [firstPage, pageCount, write] triples recorded on a served range, in first-touch order. */
  recorded(id: number): Uint32Array;
  /** One bit per page of the range: the loaded set's pages installed ahead of the program; null without one. */
  installed(id: number): Uint8Array | null;
  stats(): NativeStats;
  /** Blocks the calling thread; reads at most `max` uffd_msg (32 bytes each) into scratch; returns the count. */
  readSync(scratch: Uint8Array, max: number, timeoutMs: number): number;
  /** copy() and wake() as plain Node-API functions made for this uffd (native/uffd/fast_ioctl.h): the per-fault calls. */
  fastMethods(): FastMethods;
  /** A live snapshot (native/tracking/snapshot_writer.h); onDone is called once, on the JS thread. */
  snapshot(start: bigint, length: number, pageSize: number, destFd: number, populate: boolean,
           onDone: (err: Error | null, result?: { bytes: number; savedBeforeWrite: number; p50: number; p99: number }) => void): void;
  snapshotEnd(start: bigint): void;
}

export interface NativeRegion {
  readonly address: bigint;
  readonly length: number;
  readonly fd: number;
  /** munmap has happened (unmap() waits for accesses in flight). */
  readonly released: boolean;
  readonly buffer: ArrayBuffer;
  dontneed(offset: number, length: number): void;
  protect(offset: number, length: number, prot: number): void;
  unmap(): void;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Uint8Array): Promise<void>;
  residentPages(): number;
}

/** A shared image's memfd and source (native/memory/image_object.cc). */
export interface NativeImage {
  /** The memfd reopened read-only (what clones elsewhere receive); -1 where /proc could not reopen it. */
  readOnlyFd(): number;
  /** The memfd itself, for clones of this process. */
  fd(): number;
  write(offset: number, bytes: Uint8Array): void;
  present(offset: number): boolean;
  stats(): {
    sourceReads: number; sourceBytes: number; filledPages: number; evictedPages: number; demandFills: number;
    sharedFaults: number; prefetched: number; prefetchCursor: number; prefetchDone: boolean; prefetchError: number;
  };
  recorded(): Uint32Array;
  prefetch(runs: Uint32Array): void;
  close(): void;
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
  /** Send `data` on the connection with a duplicate of `fd` (-1: none): the shared image handoff. */
  send(conn: number, fd: number, data: Uint8Array): void;
}

export interface FdPassBinding {
  sendFd(socketPath: string, fd: number, payload: Uint8Array, timeoutMs: number): void;
  /**
   * Connects to `socketPath` (or takes the connected socket given) and reads one framed message
   * and the fd with it (-1: none) on the thread pool (native/fdpass/image_client.cc).
   */
  receiveFdMessage(pathOrSock: string | number, timeoutMs: number, maxPayload: number): Promise<{ sock: number; fd: number; data: Buffer }>;
  /** The framed message with `fd` on a connected socket. */
  sendOnSocket(sock: number, fd: number, data: Uint8Array): void;
  /** Whether a process listens at the socket path (a non-blocking connect(2) that is not refused). */
  socketListening(socketPath: string): boolean;
  FdListener: new (socketPath: string, backlog: number, readSize: number,
    onEvents: (events: NativeListenEvent[]) => void, mode?: number, maxFds?: number) => NativeFdListener;
}

export interface Binding extends FdPassBinding {
  supported: true;
  /** localMemory: the uffd was opened here, for this process's own memory (not received or forked). */
  /** dup: adopt a duplicate of fd, made by the constructor (the caller keeps fd). */
  Userfaultfd: new (fd: number, features: number, localMemory?: boolean, dup?: boolean) => NativeUserfaultfd;
  /** clone: aliasFd (an image's memfd) mapped privately. */
  Region: new (length: number, shared: boolean, hugetlb: boolean, aliasFd?: number, clone?: boolean) => NativeRegion;
  /** kind: a sourceKinds value, or -1 for a JavaScript source (filled through write()). */
  SharedImage: new (size: number, kind: number, source: Uint8Array | number | string | null, offset: number,
                    pread: boolean, maxBytes: number, record: boolean) => NativeImage;
  constants: NativeConstants;
  setErrorClass(cls: new (...args: never[]) => Error): void;
  openSyscall(userModeOnly: boolean): number;
  openDevice(userModeOnly: boolean): number;
  apiHandshake(fd: number, features: number): { api: number; features: number; ioctls: bigint };
  closeFd(fd: number): void;
  gettid(): number;
  /** _exit(2): no 'exit' handlers, no teardown; the kernel closes what is open. */
  exitNow(status: number): never;
  /** bench/: `count` UFFDIO_COPY (op 0) or UFFDIO_WAKE (op 1) in a C loop in this process; ns. */
  benchIoctlLoop(fd: number, op: number, start: bigint, count: number, src?: Uint8Array): number;
  /** One PAGEMAP_SCAN of the written pages (native/tracking/dirty_tracker.h); out holds 3 words per run. */
  /** [offset, length] pairs (bytes from start) of the written runs of [start, end), merged. */
  pagemapScanRuns(start: bigint, end: bigint, reset: boolean): Float64Array;
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
