/** Public types shared by both backends. */
import type { FeatureName, IoctlName } from './constants';

export type { FeatureName, IoctlName };
export type BackendName = 'native' | 'simulator';
export type BackendChoice = 'auto' | BackendName;

/** A span of memory. A Region is accepted wherever a Range is. */
export interface Range {
  start: bigint | number;
  length: number;
}

export interface ProbeResult {
  backend: BackendName;
  available: boolean;
  reason?: string;
  via?: 'syscall' | 'dev-userfaultfd';
  api: number;
  features: Array<FeatureName | number>;
  ioctls: Array<IoctlName | number>;
  pageSize: number;
  unprivileged: 'allowed' | 'user-mode-only' | 'denied';
  /**
   * Native: true when only UFFD_USER_MODE_ONLY fds can be opened here (no CAP_SYS_PTRACE,
   * vm.unprivileged_userfaultfd=0, no access to /dev/userfaultfd); open() then falls back to one,
   * and `reason` says why and how to lift it.
   */
  userModeOnly?: boolean;
}

export type SelfFaultPolicy = 'zeropage' | 'sigbus' | 'source';

export interface OpenOptions {
  /**
   * Features to enable; each must be supported or open() throws naming it (`err.feature`). The
   * simulator cannot fork or mremap: it refuses EVENT_FORK and EVENT_REMAP (ERR_UFFD_UNSUPPORTED).
   */
  features?: FeatureName[];
  /** The fd is always non-blocking; `true` says so, anything else is refused. */
  nonBlocking?: true;
  userModeOnly?: boolean;
  backend?: BackendChoice;
  /**
   * What answers a fault raised by the thread that runs this uffd's JS handlers. The simulator,
   * where such a touch never faults, refuses 'sigbus' (ERR_UFFD_UNSUPPORTED).
   */
  onSelfFault?: SelfFaultPolicy;
  /** Answer a fault by the fallback when no handler answered it within this time. */
  faultTimeoutMs?: number;
}

export interface RegisterOptions { missing?: boolean; wp?: boolean; minor?: boolean }
export interface RegisterResult { ioctls: Array<IoctlName | number> }
export interface CopyOptions { dontWake?: boolean; wp?: boolean }
export interface WakeOptions { dontWake?: boolean }
export interface WriteProtectOptions { protect: boolean; dontWake?: boolean }
export interface ContinueOptions { dontWake?: boolean; wp?: boolean }
export interface MoveOptions { dontWake?: boolean; allowSrcHoles?: boolean }
export interface ServeOptions {
  /** Bytes filled per fault: 'adaptive' (default), 0 or false for one page, or a fixed size. */
  readahead?: number | 'adaptive' | false;
  /**
   * What a page reads as when it is touched again after the program dropped it
   * (UFFD_EVENT_REMOVE: madvise(MADV_DONTNEED/MADV_REMOVE), a balloon): 'source' (default)
   * fills it from the source again; 'zero' gives a zero page, as the kernel would without a
   * userfaultfd. Both backends; needs the EVENT_REMOVE feature on the uffd to matter (without
   * it no REMOVE is reported, so a dropped page is filled from the source again).
   */
  removed?: 'source' | 'zero';
  /**
   * The page size of the served mapping: the base page (default), or 2 MiB for a hugetlbfs
   * mapping (a hugetlb Region sets it itself; a range of another process's memory, such as
   * Firecracker's, says it here). Faults are then answered with whole huge pages (both
   * backends; the kernel needs MISSING_HUGETLBFS). Working sets (record, prefetch) are kept in
   * base pages: with 2 MiB pages they are refused (ERR_UFFD_UNSUPPORTED).
   */
  pageSize?: number;
  /**
   * Record each page's first touch (docs/working-sets.md) and write the set to this file when
   * the range is unregistered or unserved, the uffd is closed, or by saveWorkingSet(). Read-ahead
   * then defaults to one page (read-ahead-filled pages are never recorded as touched).
   */
  record?: string;
  /**
   * Fill the working set saved in this file, in recorded order, on a native thread while demand
   * faults are answered first. A missing file is an error, unless it is also the `record` file
   * (the first run of a record-and-prefetch loop).
   */
  prefetch?: string;
  /** With both record and prefetch: how the saved set is refined across runs. */
  workingSet?: RefineOptions;
}

/** ServeOptions.workingSet: how a set recorded while prefetching is refined. */
export interface RefineOptions {
  /** Keep at most this many MiB of pages (the first in order). Default: no cap. */
  maxMiB?: number;
  /** Drop pages known to be untouched in this many runs in a row. Default 4. */
  maxAge?: number;
}

export interface PageFault {
  type: 'pagefault';
  address: bigint;
  write: boolean;
  wp: boolean;
  minor: boolean;
  /** The faulting thread's id, with THREAD_ID. */
  tid?: number;
  /** The raw UFFD_PAGEFAULT_FLAG_* bits. */
  flags: number;
}
export interface RemapEvent { type: 'remap'; from: bigint; to: bigint; length: number }
export interface RemoveEvent { type: 'remove'; start: bigint; end: bigint }
export interface UnmapEvent { type: 'unmap'; start: bigint; end: bigint }

export interface Stats {
  faults: number;
  copies: number;
  bytes: number;
  wakeups: number;
  latencyNs: { p50: number; p99: number };
  /** Pages installed by prefetch threads (serve's `prefetch`). */
  prefetched: number;
  /** Missing-page faults on served ranges, answered on demand. */
  demandFaults: number;
  /** Demand faults on pages of a set being prefetched: prefetch would have covered them, had it got there first. */
  prefetchMisses: number;
  /** Custom and http sources (PageSource.custom/http) served by this uffd, once one is. */
  source?: SourceStats;
}

/** Counters of every custom source served by one uffd: stats().source. */
export interface SourceStats {
  /** Faults answered by custom sources (from a read or the cache). */
  faults: number;
  /** read() calls made, retries included. */
  reads: number;
  bytesRead: number;
  /** Faults that joined a read already queued or in flight instead of starting one. */
  deduplicated: number;
  /** Faults answered from a cached window, with no read. */
  cacheHits: number;
  retries: number;
  timeouts: number;
  /** Windows whose read failed after every retry. */
  failures: number;
  /** Reads in flight now, and the most seen at once. */
  inFlight: number;
  maxInFlight: number;
  /** Time from a fault reaching JavaScript to its answer. */
  latencyNs: { p50: number; p99: number };
}

export interface MapOptions { shared?: boolean; hugetlb?: boolean; backend?: BackendChoice }
export type Protection = 'none' | 'read' | 'readwrite';

/** uffd.readSync(): at most `max` events (default 64), waiting at most `timeoutMs` (-1: no limit). */
export interface ReadSyncOptions { max?: number; timeoutMs?: number }
