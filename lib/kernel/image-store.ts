/**
 * A shared image's memory on the kernel: a sealed memfd (native/memory/image_object.cc), filled
 * by the clones' reader threads (native/sources/shared_image.cc), or through write() for a
 * JavaScript source. Clones map it privately (KernelRegion.clone).
 */
import * as fs from 'fs';
import type { CheckedRange } from '../base/args';
import { constants } from '../base/constants';
import { codedError } from '../base/errors';
import { binding, NativeImage } from '../base/native';
import type { ImageStoreOptions } from '../core/backend';
import type { CloneAnswerer } from '../core/image-filler';
import type { ImageCounters, ImageStore } from '../core/shared-image';
import type { PageSource } from '../sources/page-source';
import { kernelOffer } from './probe';
import { KernelRegion } from './region';

const KIND = constants.sourceKinds;

export class KernelImageStore implements ImageStore {
  readonly handle: NativeImage;
  readonly nativeSource: boolean;
  readonly clonesFaultMinor: boolean;
  private readonly size: number;
  /** The memfd's inode: what /proc/self/maps shows for a clone. */
  private readonly inode: number;

  constructor(source: PageSource, o: ImageStoreOptions) {
    const feature = o.mode === 'minor' ? 'MINOR_SHMEM' : 'MISSING_SHMEM';
    if ((kernelOffer().features & constants.features[feature]) === 0) {
      throw codedError('ERR_UFFD_UNSUPPORTED', `shared images in '${o.mode}' mode need the kernel's ${feature} feature, which this kernel lacks`);
    }
    const kind = source.custom !== null ? -1 : source.kind === 'zero' ? KIND.zero : source.kind === 'buffer' ? KIND.buffer
      : typeof source.file === 'number' ? KIND.fd : KIND.path;
    const src = source.kind === 'buffer' ? source.bytes : source.kind === 'file' ? source.file : null;
    this.handle = new binding!.SharedImage(o.size, kind, src, source.offset, source.mode === 'pread', o.maxBytes, o.record);
    this.nativeSource = source.custom === null;
    this.clonesFaultMinor = o.mode === 'minor';
    this.size = o.size;
    this.inode = fs.fstatSync(this.handle.fd()).ino;
  }

  get fd(): number {
    return this.handle.readOnlyFd();
  }

  mapClone(): KernelRegion {
    const ro = this.handle.readOnlyFd();
    return KernelRegion.clone(ro >= 0 ? ro : this.handle.fd(), this.size);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.handle.write(offset, bytes);
  }

  present(offset: number): boolean {
    return this.handle.present(offset);
  }

  answer(uffd: CloneAnswerer, page: bigint, _offset: number, minor: boolean): void {
    const range = { start: page, length: uffd.pageSize };
    if (minor) uffd.continue(range);
    else uffd.wake(range);
  }

  counters(): ImageCounters {
    const s = this.handle.stats();
    return {
      sourceReads: s.sourceReads, sourceBytes: s.sourceBytes, filledPages: s.filledPages, evictedPages: s.evictedPages,
      demandFills: s.demandFills, sharedFaults: s.sharedFaults, prefetched: s.prefetched,
    };
  }

  recorded(): Uint32Array {
    return this.handle.recorded();
  }

  prefetch(runs: Uint32Array): void {
    this.handle.prefetch(runs);
  }

  prefetchCursor(): number {
    return this.handle.stats().prefetchCursor;
  }

  close(): void {
    this.handle.close();
  }

  /**
   * This process's memory at `r` must be the image's memfd mapped privately, whole, from offset 0:
   * a wake answers a fault only there (elsewhere the page would fault again and again).
   */
  checkMapping(r: CheckedRange): void {
    const start = Number(r.start);
    const end = start + r.length;
    let covered = start;
    for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ (\d+)/.exec(line);
      if (!m) continue;
      const a = parseInt(m[1], 16);
      const b = parseInt(m[2], 16);
      if (b <= covered || a > covered) continue;
      const offset = parseInt(m[4], 16);
      // The file offset at `a` must be a's distance from the clone's start: offset 0 at its first byte.
      if (m[3][3] !== 'p' || Number(m[5]) !== this.inode || offset !== a - start) break;
      covered = b;
      if (covered >= end) return;
    }
    throw codedError('ERR_UFFD_IMAGE_MAPPING', `serve(): the memory at 0x${r.start.toString(16)} (${r.length} bytes) is not ` +
      'the shared image mapped privately, whole (map a clone with image.map(), or mmap the image fd MAP_PRIVATE from offset 0)');
  }
}
