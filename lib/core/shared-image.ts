/**
 * SharedImage: one image, many clones (docs/shared-images.md). The image is one memfd of its
 * size, filled lazily from a PageSource; every clone maps it privately. A clone's fault on a page
 * the image lacks fills that page into the image (read from the source once, whichever clone asks
 * first) and the clone maps the page-cache page: every clone then reads the same memory, and a
 * clone's write copies the page for itself. The filling runs on the reader threads of the clones'
 * uffds (native sources), or in JavaScript through one CustomServer for all clones (custom and
 * http sources: core/image-filler.ts). The backend keeps the image (ImageStore): a memfd on the
 * kernel (lib/kernel/image-store.ts), JS memory copied into each clone on the simulator
 * (lib/simulator/image-store.ts: the same bytes and source reads, no sharing).
 *
 * Clones: `image.map()` in this process (the image's own uffd serves them), or any range a uffd
 * serves with `uffd.serve(range, image)`, such as another process's clone received with
 * listenForUffd({ image }) (lib/tools/image-client.ts maps and registers one). The image lives
 * until it is closed and its last clone is gone; its memory goes when the clones unmap it too.
 */
import { toLength, toOptions } from '../base/args';
import { PAGE_SIZE } from '../base/constants';
import { checkOptionKeys, OPTION_KEYS } from '../base/option-keys';
import { closedError, codedError, invalidArgType, outOfRange, uffdError } from '../base/errors';
import type { BackendName, Range, ServeOptions, SharedImageOptions, SharedImageStats } from '../base/types';
import { PageSource } from '../sources/page-source';
import {
  installedAhead, readWorkingSet, knownSourceSize, refine, toRefineOptions, toRunPairs, toSetPath, WorkingSetFile, writeWorkingSet,
} from '../sources/working-set';
import { chooseBackend } from './backend';
import { CloneAnswerer, CloneFault, FillTarget, ImageFiller } from './image-filler';
import type { Region } from './region';

/** The cap's smallest value, in pages: a window filled must never push out its own pages. */
const MIN_CAP_PAGES = 64;

/** Counters a store keeps: SharedImageStats without what SharedImage adds. */
export type ImageCounters = Omit<SharedImageStats, 'clones' | 'residentBytes'>;

/** What a backend keeps an image in (lib/kernel/image-store.ts, lib/simulator/image-store.ts). */
export interface ImageStore extends FillTarget {
  /** The read-only file clones elsewhere map; -1 where there is none. */
  readonly fd: number;
  /** Its source is answered by the backend itself, with no JavaScript per fault. */
  readonly nativeSource: boolean;
  /** Clones are registered MINOR too and take a fault on each first touch (mode 'minor' on the kernel). */
  readonly clonesFaultMinor: boolean;
  /** A clone in this process: the image mapped privately (not registered yet). */
  mapClone(): Region;
  counters(): ImageCounters;
  /** First fills, as [firstPage, pageCount, write] triples in order. */
  recorded(): Uint32Array;
  /** Starts filling these [firstPage, pageCount] runs, in order. */
  prefetch(runs: Uint32Array): void;
  /** Pages of the prefetched set gone past; -1 without prefetch. */
  prefetchCursor(): number;
  close(): void;
}

/** The image's own uffd, for the clones of this process (a Userfaultfd, typed by what is used here). */
interface OwnUffd {
  serve(range: Region, image: SharedImage, options?: ServeOptions): { stop(): void };
  unregister(range: Range): void;
  close(): void;
}

export class SharedImage {
  readonly backend: BackendName;
  /** Bytes in the image. Every clone maps all of them. */
  readonly size: number;
  readonly pageSize = PAGE_SIZE;
  readonly mode: 'missing' | 'minor';
  /** The byte cap (0: none). */
  readonly maxBytes: number;
  private readonly store: ImageStore;
  private readonly filler: ImageFiller | null;
  private readonly readahead: ServeOptions['readahead'];
  private readonly record: string | undefined;
  private readonly loaded: WorkingSetFile | null;
  private readonly sourceBytes: number;
  private isClosed = false;
  private released = false;
  private clones = 0;
  private own: OwnUffd | null = null;
  private last: SharedImageStats | null = null;

  /** An image of `source` (any PageSource), empty until clones (or `prefetch`) fill it. */
  static create(source: PageSource, options: SharedImageOptions = {}): SharedImage {
    return new SharedImage(source, options);
  }

  private constructor(source: PageSource, options: SharedImageOptions) {
    if (!(source instanceof PageSource)) throw invalidArgType('source', 'a PageSource', source);
    checkOptionKeys(options, OPTION_KEYS.sharedImage, 'SharedImage.create()');
    const o = toOptions<SharedImageOptions>(options, 'options');
    const mode = o.mode ?? 'missing';
    if (mode !== 'missing' && mode !== 'minor') throw invalidArgType('options.mode', "'missing' or 'minor'", mode);
    this.mode = mode;
    this.sourceBytes = knownSourceSize(source, 'SharedImage: the image is made before the first read');
    this.size = o.size === undefined ? Math.ceil(this.sourceBytes / PAGE_SIZE) * PAGE_SIZE : toLength(o.size, 'options.size');
    if (this.size === 0) throw outOfRange('options.size', 'given for an empty source (a positive page multiple)', 0);
    if (this.size % PAGE_SIZE !== 0) throw outOfRange('options.size', `a multiple of the page size (${PAGE_SIZE})`, this.size);
    this.maxBytes = o.maxBytes === undefined ? 0 : toLength(o.maxBytes, 'options.maxBytes');
    if (this.maxBytes !== 0 && this.maxBytes < MIN_CAP_PAGES * PAGE_SIZE) {
      throw outOfRange('options.maxBytes', `at least ${MIN_CAP_PAGES} pages (${MIN_CAP_PAGES * PAGE_SIZE} bytes)`, this.maxBytes);
    }
    this.record = toSetPath(o.record, 'options.record');
    const prefetch = toSetPath(o.prefetch, 'options.prefetch');
    if (source.custom !== null && prefetch !== undefined) {
      throw codedError('ERR_UFFD_PREFETCH_UNSUPPORTED', 'SharedImage: a custom or http source cannot prefetch a working set yet');
    }
    const shape = { pageSize: PAGE_SIZE, sourceSize: this.sourceBytes, rangeLength: this.size };
    this.loaded = prefetch === undefined ? null : readWorkingSet(prefetch, shape);
    if (prefetch !== undefined && this.loaded === null && prefetch !== this.record) {
      throw uffdError('ENOENT', 'open', undefined, `working set ${prefetch}`);
    }
    this.readahead = o.readahead ?? (this.record !== undefined ? false : undefined);
    const backend = chooseBackend<unknown, Region, ImageStore>(o.backend);
    if (!backend.createImage) throw codedError('ERR_UFFD_UNSUPPORTED', `the ${backend.name} backend has no shared images`);
    this.backend = backend.name;
    this.store = backend.createImage(source, { size: this.size, maxBytes: this.maxBytes, record: this.record !== undefined, mode });
    this.filler = source.custom === null ? null : new ImageFiller(this.store, source.custom, this.size, PAGE_SIZE);
    if (this.loaded && this.loaded.runs.length > 0) this.store.prefetch(toRunPairs(this.loaded.runs));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The image's read-only fd (native), to hand to clones elsewhere yourself; -1 once closed, or on the simulator. */
  get fd(): number {
    return this.released ? -1 : this.store.fd;
  }

  /**
   * A clone in this process: the image mapped privately, served by the image's own uffd. Its
   * writes are its own; region.unmap() ends it. The uffd serving it reads no events, so a clone
   * alone does not keep the process alive.
   */
  map(): Region {
    this.checkOpen();
    const region = this.store.mapClone();
    let served: { stop(): void };
    try {
      this.own ??= chooseBackend<OwnUffd>(this.backend).open({ backend: this.backend });
      served = this.own.serve(region, this, this.readahead === undefined ? {} : { readahead: this.readahead });
    } catch (err) {
      region.unmap();
      throw err;
    }
    region._onUnmap(() => this.unmapped(region, served));
    return region;
  }

  stats(): SharedImageStats {
    if (this.released) return this.last!;
    const c = this.store.counters();
    return { ...c, residentBytes: c.filledPages * PAGE_SIZE, clones: this.clones };
  }

  /** Writes the first fills recorded so far (options.record) as a working set to `path`. */
  saveWorkingSet(path: string): void {
    this.checkOpen();
    this.writeSet(toSetPath(path, 'path')!);
  }

  /**
   * No clone can be made or served from now on. The clones of now keep working (their faults are
   * still answered) until they unmap; the image's memory goes with the last of them. Writes the
   * recorded working set (options.record). Idempotent.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.record !== undefined) {
      try {
        this.writeSet(this.record);
      } finally {
        this.releaseIfIdle();
      }
    } else {
      this.releaseIfIdle();
    }
  }

  /** @internal Serving (core/serving.ts): a uffd starts serving a clone of `length` bytes; throws if it cannot. */
  attach(backend: BackendName, length: number): ImageStore {
    this.checkOpen();
    if (backend !== this.backend) throw invalidArgType('uffd', `a Userfaultfd of the ${this.backend} backend (as the image)`, backend);
    if (length !== this.size) {
      throw codedError('ERR_UFFD_IMAGE_SIZE', `a clone maps the whole image: ${this.size} bytes, not ${length}`);
    }
    this.clones++;
    return this.store;
  }

  /** @internal Serving: a clone's range stopped being served (unserved, unmapped, or its uffd closed). */
  detach(): void {
    this.clones--;
    this.releaseIfIdle();
  }

  /** @internal Serving: a clone's fault on a page the image lacks, for a JavaScript source. */
  fill(f: CloneFault): boolean {
    if (this.filler === null) return false;
    this.filler.fault(f);
    return true;
  }

  /** @internal The image's readahead for serve() of a clone, unless the caller gives one. */
  get defaultReadahead(): ServeOptions['readahead'] {
    return this.readahead;
  }

  private unmapped(region: Region, served: { stop(): void }): void {
    // Until munmap has happened (an access in flight delays it) the clone stays served: a fault
    // with no uffd to answer it would put a zero page into the image, for every clone to read.
    if (!region._released) {
      setTimeout(() => this.unmapped(region, served), 2).unref();
      return;
    }
    served.stop();
    try {
      this.own?.unregister({ start: region.address, length: this.size });
    } catch {
      // the VMA is gone with its registration
    }
  }

  private releaseIfIdle(): void {
    if (!this.isClosed || this.clones > 0 || this.released) return;
    this.last = this.stats();
    this.released = true;
    this.filler?.stop();
    this.own?.close();
    this.own = null;
    this.store.close();
  }

  private writeSet(path: string): void {
    const pages = this.size / PAGE_SIZE;
    const cursor = Math.max(0, this.store.prefetchCursor());
    const installed = this.loaded ? installedAhead(this.loaded.runs, cursor, pages) : null;
    const runs = refine(this.loaded?.runs ?? null, installed, this.store.recorded(), pages, toRefineOptions(undefined, PAGE_SIZE));
    writeWorkingSet(path, {
      pageSize: PAGE_SIZE, sourceSize: this.sourceBytes, rangeLength: this.size,
      generation: (this.loaded?.generation ?? 0) + 1, runs,
    });
  }

  private checkOpen(): void {
    if (this.isClosed) throw closedError('image');
  }
}

export type { CloneAnswerer, CloneFault };

