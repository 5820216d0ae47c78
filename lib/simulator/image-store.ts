/**
 * A shared image on the simulator: the image's bytes in JavaScript memory, each page read from
 * the source once, and copied into every clone (a plain simulated region): the same bytes, the
 * same source reads and the same API as the kernel's, without the sharing (docs/simulator.md).
 * The simulator's serve() stages every page of a served range when it is served (its memory is
 * read directly, without faults), so the first clone reads the whole image from the source; a
 * JavaScript source fills only the pages clones fault on. Clones fault 'missing' in either mode.
 */
import type { ImageStoreOptions } from '../core/backend';
import type { CloneAnswerer } from '../core/image-filler';
import type { ImageCounters, ImageStore } from '../core/shared-image';
import { PAGE_SIZE } from '../base/constants';
import type { PageSource } from '../sources/page-source';
import { openSource, Source } from './page-sources';
import { SimRegion } from './region';

export class SimImageStore implements ImageStore {
  readonly fd = -1;
  readonly nativeSource: boolean;
  readonly clonesFaultMinor = false;
  /** What served clones read: the image, filled from the source as pages are asked for. */
  readonly view: Source;
  private readonly bytes: Uint8Array;
  private readonly filled: Uint8Array;
  private readonly source: Source | null;
  private readonly size: number;
  private readonly c: ImageCounters = {
    sourceReads: 0, sourceBytes: 0, filledPages: 0, evictedPages: 0, demandFills: 0, sharedFaults: 0, prefetched: 0,
  };
  private cursor = -1;

  constructor(source: PageSource, o: ImageStoreOptions) {
    this.size = o.size;
    this.source = source.custom === null ? openSource(source) : null;
    this.nativeSource = this.source !== null;
    this.bytes = new Uint8Array(o.size);
    this.filled = new Uint8Array(o.size / PAGE_SIZE);
    this.view = {
      size: o.size,
      read: (offset, length) => {
        this.fill(offset, length);
        return this.bytes.subarray(offset, offset + length);
      },
      close: () => undefined,
      // Only fill() asks: a clone is filled by its image, never by fill() (native: TrackPending).
      holds: () => false,
    };
  }

  mapClone(): SimRegion {
    return SimRegion.create(this.size, {});
  }

  write(offset: number, bytes: Uint8Array): void {
    for (let at = 0; at < bytes.byteLength; at += PAGE_SIZE) {
      const p = (offset + at) / PAGE_SIZE;
      if (this.filled[p]) continue;
      this.bytes.set(bytes.subarray(at, at + PAGE_SIZE), offset + at);
      this.mark(p);
      this.c.sourceBytes += Math.min(PAGE_SIZE, bytes.byteLength - at);
    }
    this.c.sourceReads++;
  }

  present(offset: number): boolean {
    return this.filled[Math.floor(offset / PAGE_SIZE)] === 1;
  }

  answer(uffd: CloneAnswerer, page: bigint, offset: number): void {
    uffd.copy(page, this.bytes.slice(offset, offset + PAGE_SIZE));
  }

  counters(): ImageCounters {
    return { ...this.c };
  }

  /** The simulator stages whole clones when they are served: no order of first touches to keep. */
  recorded(): Uint32Array {
    return new Uint32Array(0);
  }

  prefetch(runs: Uint32Array): void {
    this.cursor = 0;
    for (let i = 0; i + 1 < runs.length; i += 2) {
      const before = this.c.filledPages;
      this.fill(runs[i] * PAGE_SIZE, runs[i + 1] * PAGE_SIZE);
      this.c.prefetched += this.c.filledPages - before;
      this.cursor += runs[i + 1];
    }
  }

  prefetchCursor(): number {
    return this.cursor;
  }

  close(): void {
    this.source?.close();
  }

  /** Reads the absent pages of [offset, offset + length) from the source, one read per run. */
  private fill(offset: number, length: number): void {
    const src = this.source;
    if (src === null) return;
    const last = Math.ceil(Math.min(offset + length, this.size) / PAGE_SIZE);
    for (let p = Math.floor(offset / PAGE_SIZE); p < last;) {
      if (this.filled[p]) {
        p++;
        continue;
      }
      let q = p + 1;
      while (q < last && !this.filled[q]) q++;
      const at = p * PAGE_SIZE;
      const n = Math.max(0, Math.min(q * PAGE_SIZE, src.size) - at);
      if (n > 0) {
        this.bytes.set(src.read(at, n), at);
        this.c.sourceReads++;
        this.c.sourceBytes += n;
      }
      for (let i = p; i < q; i++) this.mark(i);
      p = q;
    }
  }

  private mark(p: number): void {
    this.filled[p] = 1;
    this.c.filledPages++;
  }
}
