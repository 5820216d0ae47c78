/* eslint max-lines: ["error", 540] -- serve()'s one options pipeline: working sets (issue 23), shared images (26) and following ranges with fill() (31) meet here; a split is the lead's call after integration */
/**
 * Serving: answering a range's faults from a PageSource without JavaScript per fault (the
 * backend's native or simulated source), or from a custom or http source in JavaScript
 * (sources/custom-source.ts); recording and prefetching working sets (sources/working-set.ts),
 * saved when a served range stops, is unregistered or its uffd closes. Userfaultfd's
 * collaborator (core/userfaultfd.ts); JS thread only.
 */
import * as fs from 'fs';
import { checkAligned, CheckedRange, rangesOverlap, toFillOptions, toFlag, toLength, toOptions } from '../base/args';
import { checkOptionKeys, OPTION_KEYS } from '../base/option-keys';
import { FeatureName, HUGE_PAGE_SIZE } from '../base/constants';
import { codedError, invalidArgType, outOfRange } from '../base/errors';
import type { BackendName, FillResult, PageFault, RegisterOptions, ServeOptions, SourceStats } from '../base/types';
import { CustomServer } from '../sources/custom-server';
import { FaultAnswerer, SourceCounters } from '../sources/custom-source';
import { PageSource } from '../sources/page-source';
import { openOrReadSet, readSetQuietly, SetFile } from '../sources/set-loading';
import { OpenSetPages, servedSetPages, setPagesPath, writeSetPages } from '../sources/set-pages';
import {
  CheckedRefine, corruptSet, encodeWorkingSet, knownSourceSize, LoadedSet, refine, runsOf, toRefineOptions,
  toRunWords, toSetPath, WorkingSetShape, writeWorkingSet,
} from '../sources/working-set';
import type { Delivery } from './delivery';
import type { CloneAnswerer } from './image-filler';
import { Region, UnmapWatcher, watchUnmaps } from './region';
import type { Registrations } from './registrations';
import { ImageStore, SharedImage } from './shared-image';
import { checkSourceOverlap } from './source-overlap';

/** A served range; stop() returns its faults to the JS handlers. */
export interface Served {
  readonly start: bigint;
  readonly length: number;
  stop(): void;
}

/** What a backend's serve takes besides the source: record first touches; prefetch these runs. */
export interface ServeSets {
  record: boolean;
  /**
   * The loaded set's runs, [firstPage, pageCount, flags] words in order, not checked yet: the
   * backend checks them (checkRuns) and throws corrupt(why) if they fail; null: no prefetch.
   */
  prefetch: Uint32Array | null;
  corrupt: (why: string) => Error;
  /** prefetchMode 'eager': the range's faults wait until the set is in. */
  eager: boolean;
  /** Pages a demand fault on a page of the set installs along the set's order; 0: adaptive. */
  window: number;
  /** The set's compact page file, checked and open; null: the pages come from the source. */
  pages: OpenSetPages | null;
  /** ServeOptions.follow. */
  follow: boolean;
  /** Background mode: the set's file, loaded by the backend after serve() returns (sources/set-loading.ts). */
  file: SetFile | null;
  /** Background mode: the set's page file, open, for the backend to check once `file` is loaded (set-pages.ts); null: none. */
  pagesLater: number | null;
}

/** A served range's working set: where it is saved and what it refines. */
interface ServedSet {
  handle: unknown;
  range: CheckedRange;
  source: PageSource;
  record: string | undefined;
  loaded: LoadedSet | null;
  /** The set's path while the backend loads it: read here too before the first save (refine). */
  loading: string | undefined;
  shape: WorkingSetShape;
  refine: CheckedRefine;
}

/**
 * What serving needs of its uffd. A custom source answers through the uffd's own checked
 * ioctls (a FaultAnswerer); the rest are the backend's raw serve operations.
 */
export interface ServingHost {
  /** The uffd itself. */
  readonly uffd: FaultAnswerer & CloneAnswerer & { readonly features: ReadonlyArray<FeatureName | number>; readonly backend: BackendName };
  readonly registrations: Registrations;
  readonly delivery: Delivery;
  register(r: CheckedRange, options: RegisterOptions): void;
  unregister(r: CheckedRange): void;
  /** Throws ERR_UFFD_CLOSED once the uffd is closed. */
  checkOpen(): void;
  startReader(): void;
  /** Serving alone does not keep the process alive: only event consumers do. */
  updateRef(): void;
  /**
   * Serves `range` from `source` natively. zeroRemoved: pages dropped later (REMOVE events) read
   * as zeros (ServeOptions.removed); unit: the mapping's page size when it is not the base page
   * (a hugetlb mapping). Returns the backend's handle of the served range.
   */
  serve(range: CheckedRange, source: PageSource, readahead: number, zeroRemoved: boolean, sets: ServeSets, unit?: number): unknown;
  /**
   * Serves `range`, a private mapping of the image `store` keeps, natively: faults fill the image
   * and are answered by a wake (or UFFDIO_CONTINUE with `minor`). A JavaScript source's absent
   * pages reach claim().
   */
  serveImage(range: CheckedRange, store: ImageStore, readahead: number, minor: boolean): unknown;
  unserve(handle: unknown): void;
  /** The first touches recorded on a served range: [firstPage, pageCount, write] triples in order. */
  recorded(handle: unknown): Uint32Array;
  /**
   * Pages of the loaded set installed ahead of the program, one bit per page of the range (page
   * i: bit i & 7 of byte i >> 3); null without a loaded set.
   */
  installed(handle: unknown): Uint8Array | null;
  /** Fills what the served ranges lack (fill()); settles once, when the fill ends. */
  fill(minChunk: number, maxChunk: number): Promise<FillResult>;
}

/** How often one page's fault may be woken into its source before it goes to the handlers. */
const MAX_REFAULTS = 64;

export class Serving {
  private readonly served = new Set<Served>();
  /** Pages of faults read before their range's serve(), woken to fault again: how often (refaultIntoSource). */
  private readonly refaulted = new Map<bigint, number>();
  private readonly sets = new Map<Served, ServedSet>();
  /** Ranges served by PageSource.custom/http, answered in JavaScript (sources/custom-source.ts). */
  private readonly customServers = new Set<CustomServer>();
  /** Clones of shared images served here, with the image (its JavaScript source's faults reach claim()). */
  private readonly images = new Map<Served, SharedImage>();
  private sourceCounters: SourceCounters | null = null;
  /** Held here: region.ts holds it weakly (a dropped uffd is still collected). */
  private readonly unmapWatcher: UnmapWatcher = { regionUnmapped: (start, length) => this.regionUnmapped({ start, length }) };
  private readonly unwatchUnmaps = watchUnmaps(this.unmapWatcher);

  /** fill()'s promise while it runs. */
  private fillPromise: Promise<FillResult> | null = null;

  constructor(private readonly host: ServingHost) {}

  /** A fill runs: it holds the process, as a pending fs.read does. */
  get filling(): boolean {
    return this.fillPromise !== null;
  }

  /** Userfaultfd.fill() on an open uffd: a second call while one runs gets the same promise. */
  fill(options: unknown): Promise<FillResult> {
    try {
      this.host.checkOpen();
      return this.startFill(options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private startFill(options: unknown): Promise<FillResult> {
    if (this.fillPromise !== null) return this.fillPromise;
    checkOptionKeys(options, OPTION_KEYS.fill, 'fill()');
    const { minChunk, maxChunk } = toFillOptions(options, this.pageSize);
    this.host.startReader();
    const p: Promise<FillResult> = this.host.fill(minChunk, maxChunk).finally(() => {
      if (this.fillPromise !== p) return;
      this.fillPromise = null;
      this.host.updateRef();
    });
    this.fillPromise = p;
    this.host.updateRef();
    return p;
  }

  private get pageSize(): number {
    return this.host.uffd.pageSize;
  }

  /** Userfaultfd.serve() past its range check; `range` is the argument (a Region says its page size). */
  serve(range: unknown, r: CheckedRange, source: PageSource | SharedImage, options: ServeOptions): Served {
    const { host, pageSize } = this;
    if (source instanceof SharedImage) return this.serveImage(r, source, options);
    if (!(source instanceof PageSource)) throw invalidArgType('source', 'a PageSource or a SharedImage', source);
    if (host.uffd.features.includes('SIGBUS')) {
      throw codedError('ERR_UFFD_SERVE_SIGBUS', 'serve() cannot answer faults on a userfaultfd opened with the SIGBUS ' +
        'feature: the kernel raises SIGBUS in the faulting thread instead of reporting the fault');
    }
    const o = toOptions<ServeOptions>(options, 'options');
    const unit = this.servedPageSize(range, r, o.pageSize);
    const record = toSetPath(o.record, 'options.record');
    const prefetch = toSetPath(o.prefetch, 'options.prefetch');
    if (unit !== pageSize && source.custom !== null) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `custom and http sources answer ${pageSize}-byte pages, not ${unit}-byte ones`);
    }
    if (unit !== pageSize && (record !== undefined || prefetch !== undefined)) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `working sets (record, prefetch) are kept in ${pageSize}-byte pages, not ${unit}-byte ones`);
    }
    const refineOptions = toRefineOptions(o.workingSet, pageSize);
    const eager = toPrefetchMode(o.prefetchMode);
    if (refineOptions.pages && (source.kind !== 'file' || typeof source.file !== 'string')) {
      throw codedError('ERR_UFFD_UNSUPPORTED', 'options.workingSet.pages: a compact page file is cut from a file source given by path');
    }
    // A recording is exact only one page per fault: pages read-ahead fills are never recorded.
    let readahead = this.readahead(o.readahead === undefined && record !== undefined ? false : o.readahead);
    if (readahead !== 0 && readahead % unit !== 0) readahead = Math.ceil(readahead / unit) * unit;
    const removed = o.removed ?? 'source';
    if (removed !== 'source' && removed !== 'zero') throw invalidArgType('options.removed', "'source' or 'zero'", removed);
    if (source.custom !== null && removed !== 'source') {
      throw invalidArgType('options.removed', "'source' for a custom or http source (dropped pages are read again)", removed);
    }
    const follow = toFlag(o.follow, 'options.follow');
    if (source.custom !== null && follow) {
      throw codedError('ERR_UFFD_UNSUPPORTED', 'serve(): a custom or http source cannot follow its memory ({ follow }): ' +
        'it is answered in JavaScript, after the layout events');
    }
    if (source.runs !== null && unit !== pageSize) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `a sparse source serves ${pageSize}-byte pages, not ${unit}-byte ones`);
    }
    host.checkOpen(); // the options read: a getter of theirs may have closed it
    if (source.custom !== null && prefetch !== undefined) {
      throw codedError('ERR_UFFD_PREFETCH_UNSUPPORTED', 'serve(): a custom or http source records a working set ' +
        '({ record }) but cannot prefetch one yet ({ prefetch })');
    }
    this.checkNotServed(r);
    checkSourceOverlap(source, [r, ...host.registrations]);
    let set: ServedSet | null = null;
    let file: SetFile | null = null;
    if (record !== undefined || prefetch !== undefined) {
      const shape = {
        pageSize, sourceSize: knownSourceSize(source, 'serve(): a working set must match its source\'s size (to record one)'),
        rangeLength: r.length,
      };
      // Background mode loads the set after serve() returns, and then checks its page file.
      let loaded: LoadedSet | null;
      ({ loaded, file } = openOrReadSet(prefetch, record, shape, !eager, (err) => {
        if (!host.uffd.closed) host.delivery.report(err);
      }));
      set = { handle: null, range: r, source, record, loaded, loading: file ? prefetch : undefined, shape, refine: refineOptions };
    }
    const runs = set?.loaded && set.loaded.words.length > 0 ? set.loaded.words : null;
    const pages = refineOptions.pages ? servedSetPages(prefetch, runs, set?.loaded?.checksum ?? 0, file !== null, source, pageSize) : null;
    const sets: ServeSets = {
      record: record !== undefined,
      prefetch: runs,
      corrupt: (why) => corruptSet(why, prefetch),
      eager,
      // Along the set, read-ahead is adaptive unless `readahead` says otherwise, also when recording:
      // pages so installed are known (refine keeps their age), not mistaken for untouched ones.
      window: o.readahead === undefined || o.readahead === 'adaptive' ? 0 : readahead / pageSize,
      pages: pages?.checked ?? null,
      follow,
      file,
      pagesLater: pages?.later ?? null,
    };
    const register = o.register === undefined || toFlag(o.register, 'options.register');
    const registeredHere = register && !host.registrations.covers(r);
    if (registeredHere) {
      try {
        host.register(r, { missing: true });
      } catch (err) {
        if (file) fs.closeSync(file.fd);
        if (sets.pagesLater !== null) fs.closeSync(sets.pagesLater);
        throw err;
      }
    }
    let handle: unknown;
    try {
      handle = source.custom !== null ? this.serveCustom(r, source, readahead, sets.record)
        : unit === pageSize ? host.serve(r, source, readahead, removed === 'zero', sets)
          : host.serve(r, source, readahead, removed === 'zero', sets, unit);
    } catch (err) {
      // A source that cannot be opened fails here, not at the first fault: leave no trace.
      if (registeredHere) host.unregister(r);
      throw err;
    } finally {
      if (sets.pages) fs.closeSync(sets.pages.fd); // the backend holds its own
      if (file) fs.closeSync(file.fd);
      if (sets.pagesLater !== null) fs.closeSync(sets.pagesLater);
    }
    if (pages?.error) process.nextTick(() => host.delivery.report(pages.error!));
    const served = this.started(r, () => {
      if (host.uffd.closed) return;
      this.refaulted.clear();
      const ws = this.sets.get(served);
      if (ws) this.autoSave(ws);
      this.sets.delete(served);
      if (handle instanceof CustomServer) this.unserveCustom(handle);
      else host.unserve(handle);
    });
    if (set) {
      set.handle = handle;
      this.sets.set(served, set);
    }
    return served;
  }

  /**
   * A clone of a shared image: `r` maps the image privately, whole. Registered (MISSING, and
   * MINOR for a 'minor' image) every time, even where it was: a clone's registration must never
   * be missing while it is mapped (a fault with no uffd would put a zero page into the image).
   */
  private serveImage(r: CheckedRange, image: SharedImage, options: ServeOptions): Served {
    const { host } = this;
    const o = toOptions<ServeOptions>(options, 'options');
    for (const key of ['removed', 'pageSize', 'record', 'prefetch', 'workingSet'] as const) {
      if (o[key] !== undefined) {
        throw codedError('ERR_UFFD_UNSUPPORTED', `serve() of a shared image takes no options.${key}` +
          (key === 'record' || key === 'prefetch' ? ': give it to SharedImage.create()' : ''));
      }
    }
    const readahead = this.readahead(o.readahead ?? image.defaultReadahead);
    host.checkOpen(); // the options read: a getter of theirs may have closed it
    this.checkNotServed(r);
    const store = image.attach(host.uffd.backend, r.length);
    const minor = store.clonesFaultMinor;
    let handle: unknown;
    try {
      host.register(r, { missing: true, minor });
      handle = host.serveImage(r, store, readahead, minor);
    } catch (err) {
      image.detach();
      throw err;
    }
    const served = this.started(r, () => {
      this.images.delete(served);
      if (!host.uffd.closed) host.unserve(handle);
      image.detach();
    });
    this.images.set(served, image);
    return served;
  }

  /** A range now served: the reader runs, the ref is right; `stop` runs once, at the first stop(). */
  private started(r: CheckedRange, stop: () => void): Served {
    this.host.startReader();
    this.host.updateRef();
    const served: Served = {
      start: r.start,
      length: r.length,
      stop: () => {
        if (this.served.delete(served)) stop();
      },
    };
    this.served.add(served);
    return served;
  }

  private checkNotServed(r: CheckedRange): void {
    const end = r.start + BigInt(r.length);
    for (const x of this.served) {
      if (r.start < x.start + BigInt(x.length) && end > x.start) {
        throw outOfRange('range', `outside the ranges already served (0x${x.start.toString(16)}, ${x.length} bytes)`, r);
      }
    }
  }

  /** Userfaultfd.saveWorkingSet() past its range check. */
  saveWorkingSet(r: CheckedRange, path: string): void {
    const file = toSetPath(path, 'path')!;
    for (const ws of this.sets.values()) {
      if (ws.record !== undefined && ws.range.start === r.start && ws.range.length === r.length) {
        this.writeSet(ws, file);
        return;
      }
    }
    throw codedError('ERR_UFFD_NOT_RECORDING', `No range served with { record } at 0x${r.start.toString(16)} (${r.length} bytes)`);
  }

  /** `r` was unregistered: the working sets of the served ranges it touches are saved. */
  unregistered(r: CheckedRange): void {
    const rEnd = r.start + BigInt(r.length);
    for (const ws of this.sets.values()) {
      if (ws.range.start < rEnd && ws.range.start + BigInt(ws.range.length) > r.start) this.autoSave(ws);
    }
  }

  /**
   * Before `r` is registered or served: what was unmapped under it is forgotten, registrations
   * and served ranges both (their sets saved, faults given back). A new mapping there (mmap
   * reuses addresses, once the old mapping is gone) must not be answered by the old source, nor
   * taken for registered.
   */
  forgetUnmapped(r: CheckedRange): void {
    for (const s of this.host.registrations.takeUnmapped(r)) {
      for (const x of [...this.served]) if (rangesOverlap(x, s)) x.stop();
    }
  }

  /**
   * A region was unmapped (region.ts) under what this uffd registered or served: the kernel
   * drops the registrations with the mapping. Noted, not acted on yet: the kernel backend
   * unmaps once the reads in flight there end, and those are still answered by the source.
   */
  private regionUnmapped(span: CheckedRange): void {
    if (this.host.uffd.closed) return;
    this.host.registrations.noteUnmapped(span, [...this.served].some((x) => rangesOverlap(x, span)));
  }

  /** The custom sources' counters for stats(); null when none was served. */
  sourceStats(): SourceStats | null {
    return this.sourceCounters === null ? null : this.sourceCounters.snapshot();
  }

  /**
   * A fault no native source answered: true when a custom source's range holds it (that source
   * answers it, asynchronously), or when a native source's range does (refaultIntoSource).
   */
  claim(e: PageFault): boolean {
    // Nothing served (the README's handler): no iterator made per fault, no loop compiled.
    if (e.wp || this.served.size === 0) return false;
    for (const [x, image] of this.images) {
      if (e.address < x.start || e.address >= x.start + BigInt(x.length)) continue;
      const report = (err: Error, f?: PageFault): void => this.host.delivery.report(err, f);
      if (!image.fill({ uffd: this.host.uffd, start: x.start, fault: e, minor: image.mode === 'minor', report })) return false;
      this.host.delivery.watch(e);
      return true;
    }
    if (e.minor) return false;
    for (const server of this.customServers) {
      if (!server.covers(e.address)) continue;
      this.host.delivery.watch(e);
      server.fault(e);
      return true;
    }
    return this.refaultIntoSource(e);
  }

  /**
   * A missing-page fault in a natively served range reaches JavaScript only when the reader read
   * it before that range's serve(): a peer already faulting while its ranges are served one by
   * one (a VM's vCPUs run from the handshake on). Woken, it faults again and the source answers
   * it; answered by the handlers or the fallback instead, it would read zeros. Several threads
   * may have faulted the page (vCPUs on one huge page all report its first address), so a page
   * may come back a few times; one that keeps coming back (a source that cannot answer it) goes
   * on to the handlers after MAX_REFAULTS.
   */
  private refaultIntoSource(e: PageFault): boolean {
    if (this.served.size === this.customServers.size) return false;
    const page = e.address - (e.address % BigInt(this.pageSize));
    const n = this.refaulted.get(page) ?? 0;
    if (n >= MAX_REFAULTS) {
      this.refaulted.delete(page);
      return false;
    }
    for (const x of this.served) {
      if (e.address < x.start || e.address >= x.start + BigInt(x.length)) continue;
      this.refaulted.set(page, n + 1);
      this.host.uffd.wake({ start: page, length: this.pageSize });
      return true;
    }
    return false;
  }

  /** close(): the working sets are saved; the custom sources stop (closing wakes their faults); clones end. */
  close(): void {
    this.unwatchUnmaps();
    for (const [served, image] of this.images) {
      this.served.delete(served);
      image.detach();
    }
    this.images.clear();
    for (const ws of this.sets.values()) this.autoSave(ws);
    this.sets.clear();
    for (const server of this.customServers) server.stop();
    this.customServers.clear();
  }

  /** The page file first, naming the set by its checksum: a crash between the two leaves it stale, never wrong. */
  private writeSet(ws: ServedSet, path: string): void {
    const custom = ws.handle instanceof CustomServer;
    const recorded = custom ? (ws.handle as CustomServer).recorded() : this.host.recorded(ws.handle);
    const installed = custom ? null : this.host.installed(ws.handle);
    if (ws.loading !== undefined) ws.loaded = readSetQuietly(ws.loading, ws.shape);
    ws.loading = undefined;
    const runs = refine(ws.loaded ? runsOf(ws.loaded) : null, installed, recorded, ws.range.length / this.pageSize, ws.refine);
    const bytes = encodeWorkingSet({ ...ws.shape, generation: (ws.loaded?.generation ?? 0) + 1, runs });
    if (ws.refine.pages) {
      writeSetPages(setPagesPath(path), toRunWords(runs), bytes.readUInt32LE(bytes.length - 4), ws.source, this.pageSize);
    }
    writeWorkingSet(path, bytes);
  }

  /** The automatic saves (unregister, stop, close) report a failure as an 'error' event. */
  private autoSave(ws: ServedSet): void {
    if (ws.record === undefined) return;
    try {
      this.writeSet(ws, ws.record);
    } catch (err) {
      process.nextTick(() => this.host.delivery.report(err as Error));
    }
  }

  /** A custom source's range: its faults reach claim() instead of the listeners. */
  private serveCustom(r: CheckedRange, source: PageSource, readahead: number, record: boolean): CustomServer {
    this.sourceCounters ??= new SourceCounters();
    // readahead 'adaptive' (0): a fetched window is copied whole, the fewest faults per read;
    // a smaller readahead copies that much per fault and keeps the rest of the window cached.
    const server = new CustomServer(this.host.uffd, r.start, r.length, source.custom!, readahead, this.sourceCounters,
      (err, fault) => this.host.delivery.report(err, fault));
    if (record) server.record();
    this.customServers.add(server);
    return server;
  }

  /** Faults still waiting on a stopped custom source go to the handlers, or the fallback. */
  private unserveCustom(server: CustomServer): void {
    this.customServers.delete(server);
    for (const e of server.stop()) this.host.delivery.giveBack(e);
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
}

function toPrefetchMode(v: unknown): boolean {
  if (v === undefined || v === 'background') return false;
  if (v === 'eager') return true;
  throw invalidArgType('options.prefetchMode', "'background' or 'eager'", v);
}
