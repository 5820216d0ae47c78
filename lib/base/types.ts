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
  /**
   * The default huge page size, a hugetlb Region's page size: the kernel's (/proc/meminfo
   * Hugepagesize). 2 MiB over 4 KiB pages, 32 MiB over 16 KiB pages, 512 MiB over 64 KiB pages.
   */
  hugePageSize: number;
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
  /**
   * copy() and zeropage() fail with EAGAIN (bytes 0) while a non-cooperative event (FORK,
   * REMAP, REMOVE, UNMAP) has been read that this uffd's listeners have not been given yet, as
   * the kernel's own ioctls do until an event is read. A handler that answers after an
   * asynchronous read (a page from the network) then never installs a page where a REMAP,
   * UNMAP or REMOVE has moved or dropped the memory, nor into a parent whose FORK it has not
   * handled: it retries the answer after the event, as CRIU's lazy-pages daemon does. Default
   * false: the reader thread reads events ahead of the listeners, and the kernel's EAGAIN ends
   * when it does. Both backends.
   */
  orderedAnswers?: boolean;
}

export interface RegisterOptions { missing?: boolean; wp?: boolean; minor?: boolean }
export interface RegisterResult { ioctls: Array<IoctlName | number> }
/**
 * `errorOnExist: false`: a destination page that is already there (EEXIST: another thread's
 * fault on the same page was answered first, or a prefetch got there) is success, not an
 * error. The call then wakes the range (unless `dontWake`) and returns 0, and no exception
 * object is made. Default true: EEXIST throws a UffdError, as the kernel reports it.
 */
export interface ExistOptions { errorOnExist?: boolean }
export interface CopyOptions extends ExistOptions { dontWake?: boolean; wp?: boolean }
export interface WakeOptions { dontWake?: boolean }
export interface ZeropageOptions extends ExistOptions { dontWake?: boolean }
export interface WriteProtectOptions { protect: boolean; dontWake?: boolean }
export interface ContinueOptions extends ExistOptions { dontWake?: boolean; wp?: boolean }
export interface MoveOptions extends ExistOptions { dontWake?: boolean; allowSrcHoles?: boolean }
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
   * The page size of the served mapping: the base page (default), or the kernel's huge page
   * size (`probe().hugePageSize`: 2 MiB over 4 KiB pages, 32 MiB over 16 KiB) for a hugetlbfs
   * mapping (a hugetlb Region sets it itself; a range of another process's memory, such as
   * Firecracker's, says it here). Faults are then answered with whole huge pages (both
   * backends; the kernel needs MISSING_HUGETLBFS). Working sets (record, prefetch) are kept in
   * base pages: with huge pages they are refused (ERR_UFFD_UNSUPPORTED).
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
   * (the first run of a record-and-prefetch loop). In background mode the set is loaded after
   * serve() returns (faults are answered from the source meanwhile), and a file that is not a set
   * for the range is an 'error' event (ERR_UFFD_WORKING_SET_*); in eager mode serve() throws it.
   */
  prefetch?: string;
  /**
   * How `prefetch` installs the set (docs/working-sets.md): 'background' (default) while the
   * program runs, demand faults first and the prefetch following the program; 'eager' before
   * the program runs: the range's faults wait until the whole set is in.
   */
  prefetchMode?: 'background' | 'eager';
  /** How the saved set is refined across runs, and whether its pages are kept beside it. */
  workingSet?: WorkingSetOptions;
  /**
   * The range follows the memory it serves, as a lazy-restore daemon needs (docs/criu.md):
   * moved with it by mremap (UFFD_EVENT_REMAP), cut where it is unmapped (UNMAP), and served to
   * a fork child's uffd as it was at the fork (FORK: the 'fork' event's uffd serves it, no
   * serve() needed). The pages it fills are tracked, so that fill() installs only the rest,
   * and with `removed: 'zero'` a page the program dropped is never filled again. Default false:
   * the range stays where it was served. Kernel only for REMAP and FORK (the simulator has
   * neither); not for custom and http sources (ERR_UFFD_UNSUPPORTED).
   */
  follow?: boolean;
  /**
   * serve() registers the range for missing faults first if this uffd object has not (default
   * true). false: it is registered already, by the process that sent this uffd, perhaps not yet
   * (CRIU sends its tasks' uffds before its restorer has moved their memory into place and
   * registered it): serve() then registers nothing and only answers what comes.
   */
  register?: boolean;
}

/** uffd.fill()'s options: the chunk size, as CRIU's lazy-pages daemon grows it. */
export interface FillOptions {
  /** Bytes of the first chunk, and of the next one after each demand fault (default 64 KiB). */
  minChunk?: number;
  /** Each chunk is minChunk bytes longer than the last, up to this many (default 4 MiB). */
  maxChunk?: number;
}

/** What uffd.fill() did. */
export interface FillResult {
  /** Pages the fill installed (demand faults installed the others). */
  pages: number;
  /** The memory's owner exited first: what was left will never be needed. */
  ownerGone: boolean;
}

/** ServeOptions.workingSet: how a set recorded while prefetching is refined. */
export interface RefineOptions {
  /** Keep at most this many MiB of pages (the first in order). Default: no cap. */
  maxMiB?: number;
  /** Drop pages known to be untouched in this many runs in a row. Default 4. */
  maxAge?: number;
}

/** ServeOptions.workingSet. */
export interface WorkingSetOptions extends RefineOptions {
  /**
   * The compact image (REAP): with `record`, also write the set's pages, in recorded order, to
   * `<record>.pages` when the set is saved; with `prefetch`, read `<prefetch>.pages` (if there
   * is one) instead of the source, sequentially. File sources given by path only. Default false.
   */
  pages?: boolean;
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
  /** Pages installed by fill(). */
  filled: number;
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

/**
 * SharedImage.create()'s options (docs/shared-images.md). An image is one memfd, filled lazily
 * from its source and mapped privately by every clone: a page is read once while it stays in the
 * image, held once in memory whatever the number of clones, and a clone's writes stay its own.
 */
export interface SharedImageOptions {
  /** Bytes in the image, a page multiple. Default: the source's size rounded up to a page. */
  size?: number;
  /**
   * How clones fault (docs/shared-images.md, "Two modes"): 'missing' (default), only on pages
   * the image lacks (a page filled once is mapped by every clone without a fault); or 'minor',
   * on every clone's first touch of each page (UFFDIO_CONTINUE), which costs a fault per page per
   * clone and lets each clone's touches be seen.
   */
  mode?: 'missing' | 'minor';
  /**
   * A byte cap on the image's memory: past it, the pages touched least recently are dropped
   * (FALLOC_FL_PUNCH_HOLE) and read from the source again when a clone touches them again.
   * At least 64 pages. Default: none.
   */
  maxBytes?: number;
  /** Bytes filled per fault, as serve()'s: 'adaptive' (default), 0 or false for one page, or a size. */
  readahead?: number | 'adaptive' | false;
  /**
   * Fill the working set saved in this file into the image, in recorded order, on a native
   * thread, from create() on: every clone then finds those pages there. A missing file is an
   * error, unless it is also the `record` file.
   */
  prefetch?: string;
  /**
   * Record the order in which pages were first asked for by any clone, and write it as a working
   * set to this file at close() or saveWorkingSet(). Read-ahead then defaults to one page.
   */
  record?: string;
  backend?: BackendChoice;
}

/** SharedImage.stats(). */
export interface SharedImageStats {
  /** Reads of the source: one per run of absent pages a fault or the prefetcher filled. */
  sourceReads: number;
  /** Bytes read from the source (for a JavaScript source: bytes its reads delivered). */
  sourceBytes: number;
  /** Bytes the image holds now (filledPages x pageSize). */
  residentBytes: number;
  filledPages: number;
  /** Pages the byte cap dropped (each is read again if touched again). */
  evictedPages: number;
  /** Clone faults that found their page absent and filled it. */
  demandFills: number;
  /** Clone faults that found their page filled already (by another clone, read-ahead or prefetch). */
  sharedFaults: number;
  /** Pages the prefetch thread filled. */
  prefetched: number;
  /** Clones served now, in this process and elsewhere. */
  clones: number;
}
