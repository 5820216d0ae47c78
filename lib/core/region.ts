/**
 * Region: memory to register with a userfaultfd. `buffer` views it directly; `read`/`write`
 * touch it off the JS thread, so a JS fault handler and the memory it serves can share a process.
 */
import { checkAligned, CheckedRange, checkSpan, toBytes, toLength, toOptions, toRange } from '../base/args';
import { checkOptionKeys, OPTION_KEYS } from '../base/option-keys';
import { chooseBackend } from './backend';
import { HUGE_PAGE_SIZE, PAGE_SIZE } from '../base/constants';
import { closedError, invalidArgType, uffdError } from '../base/errors';
import type { BackendName, MapOptions, Protection } from '../base/types';

/** Region buffers, to find the region behind a view passed as `data` (see write()). */
const regionOfBuffer = new WeakMap<ArrayBuffer, Region>();

/**
 * The memory span a view covers when it views a Region's buffer, else null (JS heap memory,
 * which no uffd registers).
 */
export function regionSpanOf(bytes: Uint8Array): { start: bigint; length: number } | null {
  const region = regionOfBuffer.get(bytes.buffer as ArrayBuffer);
  if (region === undefined || region.unmapped) return null;
  return { start: region.address + BigInt(bytes.byteOffset), length: bytes.byteLength };
}

/** What hears of every unmap() (a Userfaultfd: what it served and registered there is stale). */
export interface UnmapWatcher {
  regionUnmapped(start: bigint, length: number): void;
}

/** The watchers, held weakly: a uffd dropped without close() is still collected. */
const unmapWatchers = new Set<WeakRef<UnmapWatcher>>();

/** Tells `w` of every region unmapped from now on; returns how to stop. */
export function watchUnmaps(w: UnmapWatcher): () => void {
  const ref = new WeakRef(w);
  unmapWatchers.add(ref);
  return () => unmapWatchers.delete(ref);
}

/**
 * A uffd method's range argument: a Region of the uffd's backend (still mapped), or a Range
 * checked against the uffd's page size.
 */
export function rangeOf(value: unknown, backend: BackendName, pageSize: number): CheckedRange {
  if (value instanceof Region) {
    if (value.backend !== backend) throw invalidArgType('range', `a Region of the ${backend} backend`, value);
    if (value.unmapped) throw closedError('region');
    return { start: value.address, length: value.length };
  }
  return toRange(value, pageSize);
}

export abstract class Region {
  abstract readonly backend: BackendName;
  /** The first byte's address. */
  abstract readonly address: bigint;
  abstract readonly length: number;
  /** The memfd of a shared region, else -1. */
  abstract readonly fd: number;
  readonly shared: boolean;
  readonly hugetlb: boolean;
  readonly pageSize: number;
  /** Spans made 'none' (0) or 'read' (1) by protect(): a read or write there from the thread
   * pool would kill the process with SIGSEGV, so it is refused with EFAULT instead. */
  private readonly guards: Array<[number, number, 0 | 1]> = [];

  /** Maps `length` bytes: private anonymous, or memfd-backed with `shared`, or hugetlb. */
  static map(length: number, options: MapOptions = {}): Region {
    checkOptionKeys(options, OPTION_KEYS.map, 'Region.map()');
    const o = toOptions<MapOptions>(options, 'options');
    toLength(length, 'length');
    if (o.shared !== undefined && typeof o.shared !== 'boolean') throw invalidArgType('options.shared', 'of type boolean', o.shared);
    if (o.hugetlb !== undefined && typeof o.hugetlb !== 'boolean') throw invalidArgType('options.hugetlb', 'of type boolean', o.hugetlb);
    checkAligned(length, o.hugetlb ? HUGE_PAGE_SIZE : PAGE_SIZE, 'length');
    return chooseBackend<unknown, Region>(o.backend).mapRegion(length, o as MapOptions);
  }

  protected constructor(options: MapOptions) {
    this.shared = options.shared === true;
    this.hugetlb = options.hugetlb === true;
    this.pageSize = this.hugetlb ? HUGE_PAGE_SIZE : PAGE_SIZE;
  }

  /** The same as `address`, so that a Region is a Range. */
  get start(): bigint {
    return this.address;
  }

  abstract get unmapped(): boolean;

  /** A view of the memory. After unmap() it is detached (length 0). */
  abstract get buffer(): ArrayBuffer;

  /**
   * Copies bytes out on another thread (the thread pool): faults there do not stop JS. After
   * unmap() the promise rejects with ERR_UFFD_UNMAPPED.
   */
  read(offset: number, length: number): Promise<Buffer> {
    if (this.unmapped) return Promise.reject(closedError('region'));
    toLength(offset, 'offset', true);
    toLength(length, 'length');
    checkSpan(offset, length, this.length, 'offset + length');
    this.checkAccess(offset, length, false);
    return this._read(offset, length);
  }

  /** Copies `data` in on another thread (the thread pool); rejects with ERR_UFFD_UNMAPPED after unmap(). */
  write(offset: number, data: Uint8Array): Promise<void> {
    if (this.unmapped) return Promise.reject(closedError('region'));
    toLength(offset, 'offset', true);
    const bytes = toBytes(data, 'data');
    if (bytes.byteLength === 0) return Promise.resolve();
    checkSpan(offset, bytes.byteLength, this.length, 'offset + data.length');
    this.checkAccess(offset, bytes.byteLength, true);
    // `data` may view another region: its protected pages would kill the copy as well.
    const from = regionOfBuffer.get(bytes.buffer as ArrayBuffer);
    if (from !== undefined && !from.unmapped) from.checkAccess(bytes.byteOffset, bytes.byteLength, false);
    return this._write(offset, bytes);
  }

  /** madvise(MADV_DONTNEED): the pages are dropped; a registered range faults again. */
  dontneed(offset: number, length: number): void {
    this.checkLive();
    this.checkPages(offset, length);
    this._dontneed(offset, length);
  }

  /** mprotect: 'none', 'read' or 'readwrite'. */
  protect(offset: number, length: number, protection: Protection): void {
    this.checkLive();
    this.checkPages(offset, length);
    if (protection !== 'none' && protection !== 'read' && protection !== 'readwrite') {
      throw invalidArgType('protection', "'none', 'read' or 'readwrite'", protection);
    }
    this._protect(offset, length, protection);
    this.setGuard(offset, offset + length, protection === 'none' ? 0 : protection === 'read' ? 1 : 2);
  }

  /** A second mapping of the same pages (shared regions): fill pages here for MINOR faults. */
  alias(): Region {
    this.checkLive();
    if (!this.shared) throw invalidArgType('this', 'a shared region (map with { shared: true })', this);
    return this._alias();
  }

  /** How many of the region's pages are in memory. */
  residentPages(): number {
    this.checkLive();
    return this._residentPages();
  }

  /**
   * Unmaps now, or once the reads and writes in flight end; the buffer is detached. What a uffd
   * served or registered in this region is forgotten before it registers or serves anything
   * there again (a new region mmap places at this address is never answered by the old source).
   */
  unmap(): void {
    if (this.unmapped) return;
    this._unmap();
    for (const ref of unmapWatchers) {
      const w = ref.deref();
      if (w === undefined) unmapWatchers.delete(ref);
      else w.regionUnmapped(this.address, this.length);
    }
  }

  protected abstract _read(offset: number, length: number): Promise<Buffer>;
  protected abstract _write(offset: number, data: Uint8Array): Promise<void>;
  protected abstract _dontneed(offset: number, length: number): void;
  protected abstract _protect(offset: number, length: number, protection: Protection): void;
  protected abstract _alias(): Region;
  protected abstract _residentPages(): number;
  protected abstract _unmap(): void;

  /** Backends call this with each buffer they hand out. */
  protected noteBuffer(buffer: ArrayBuffer): ArrayBuffer {
    if (buffer.byteLength > 0) regionOfBuffer.set(buffer, this);
    return buffer;
  }

  protected checkLive(): void {
    if (this.unmapped) throw closedError('region');
  }

  private setGuard(start: number, end: number, level: 0 | 1 | 2): void {
    const kept: Array<[number, number, 0 | 1]> = [];
    for (const [s, e, l] of this.guards) {
      if (e <= start || s >= end) kept.push([s, e, l]);
      else {
        if (s < start) kept.push([s, start, l]);
        if (e > end) kept.push([end, e, l]);
      }
    }
    if (level !== 2) kept.push([start, end, level]);
    this.guards.splice(0, this.guards.length, ...kept);
  }

  private checkAccess(offset: number, length: number, write: boolean): void {
    for (const [s, e, l] of this.guards) {
      if (s < offset + length && e > offset && (write || l === 0)) {
        throw uffdError('EFAULT', write ? 'region.write' : 'region.read', undefined,
          `bytes ${s}..${e} of the region are protected '${l === 0 ? 'none' : 'read'}'`);
      }
    }
  }

  private checkPages(offset: number, length: number): void {
    toLength(offset, 'offset', true);
    toLength(length, 'length');
    checkAligned(offset, this.pageSize, 'offset');
    checkAligned(length, this.pageSize, 'length');
    checkSpan(offset, length, this.length, 'offset + length');
  }
}
