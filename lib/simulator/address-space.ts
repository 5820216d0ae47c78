/**
 * The simulated address space: fake page-aligned addresses for the simulator's regions, and
 * their page tables. JS thread only (the simulator has no other thread).
 *
 * A `Mapping` is one mapped region (one VMA, split per page here); a `Backing` is the memory
 * behind it: private to one mapping, or shared (a simulated memfd) by a region and its aliases,
 * whose per-page `cached` flags are the page cache that MINOR faults and CONTINUE work on.
 */
import { constants } from '../base/constants';
import { uffdError } from '../base/errors';
import type { UffdEvent } from '../core/userfaultfd';

/**
 * The userfaultfd context that registered a page, as the page tables see it: the kernel's
 * vma->vm_userfaultfd_ctx. Only UffdContext (context.ts) registers pages, so every owner is one.
 */
export interface PageOwner {
  has(feature: keyof typeof constants.features): boolean;
  postEvent(event: UffdEvent): void;
}

/** Page protections, as mprotect would set them. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_READWRITE = 3;

/** The memory behind one or more mappings. */
export class Backing {
  /** The bytes. Detached when the last mapping of it is unmapped. */
  memory: ArrayBuffer;
  /** Shared backings: 1 where the page is in the page cache (written, copied, or touched). */
  readonly cached: Uint8Array;
  private users = 0;

  constructor(readonly length: number, readonly shared: boolean, readonly pageSize: number) {
    try {
      this.memory = new ArrayBuffer(length);
    } catch {
      // V8's "Array buffer allocation failed" (a RangeError with no code): what mmap says.
      throw uffdError('ENOMEM', 'mmap', undefined, `cannot allocate ${length} bytes of simulated memory`);
    }
    this.cached = new Uint8Array(shared ? length / pageSize : 0);
  }

  attach(): void {
    this.users++;
  }

  /** The last mapping went: the memory is released (and any view of it detached). */
  detach(): void {
    if (--this.users > 0) return;
    detachBuffer(this.memory);
    this.memory = new ArrayBuffer(0);
  }

  zero(page: number): void {
    new Uint8Array(this.memory, page * this.pageSize, this.pageSize).fill(0);
  }
}

/** Detaches `buffer` (its views read as empty) and returns an ArrayBuffer with the same bytes. */
export function detachBuffer(buffer: ArrayBuffer): ArrayBuffer {
  const transfer = (buffer as ArrayBuffer & { transfer?: () => ArrayBuffer }).transfer;
  if (typeof transfer === 'function') return transfer.call(buffer);
  return structuredClone(buffer, { transfer: [buffer] });
}

/**
 * A served range's bytes for one page, written into the page while it is missing: the kernel
 * backend answers a JS-thread touch of served memory on its reader thread, and a JS read of
 * `region.buffer` cannot fault here, so the simulator shows the bytes the answer would bring.
 */
export interface Stager {
  readonly first: number;
  readonly last: number;
  fill(page: number): void;
}

/** One mapped region and its page table. */
export class Mapping {
  readonly end: bigint;
  readonly pages: number;
  /** 1 where this mapping maps the page (its page-table entry is present). */
  readonly mapped: Uint8Array;
  /** 1 where the present page is write-protected (the uffd-wp bit). */
  readonly wp: Uint8Array;
  /** 1 where UFFDIO_POISON left a poison marker. */
  readonly poisoned: Uint8Array;
  readonly prot: Uint8Array;
  /** The userfaultfd context that registered each page, and its UFFDIO_REGISTER mode. */
  readonly owner: Array<PageOwner | null>;
  readonly mode: Uint8Array;
  /** Served ranges staging their bytes into missing pages. */
  readonly stagers: Stager[] = [];
  /** Pages being filled by an access in flight; unmap waits for them. */
  inFlight = 0;
  removed = false;

  constructor(readonly start: bigint, readonly length: number, readonly backing: Backing,
              readonly hugetlb: boolean) {
    this.end = start + BigInt(length);
    this.pages = length / backing.pageSize;
    this.mapped = new Uint8Array(this.pages);
    this.wp = new Uint8Array(this.pages);
    this.poisoned = new Uint8Array(this.pages);
    this.prot = new Uint8Array(this.pages).fill(PROT_READWRITE);
    this.owner = new Array<PageOwner | null>(this.pages).fill(null);
    this.mode = new Uint8Array(this.pages);
    backing.attach();
  }

  get pageSize(): number {
    return this.backing.pageSize;
  }

  get shared(): boolean {
    return this.backing.shared;
  }

  /** The page index of `address` (inside this mapping). */
  pageOf(address: bigint): number {
    return Number((address - this.start) / BigInt(this.pageSize));
  }

  addressOf(page: number): bigint {
    return this.start + BigInt(page) * BigInt(this.pageSize);
  }

  /** Whether the page holds data that this mapping can see without a fault. */
  present(page: number): boolean {
    return this.mapped[page] === 1;
  }

  /** Drops the page from this mapping (MADV_DONTNEED): private pages lose their bytes and bits. */
  zap(page: number): void {
    this.mapped[page] = 0;
    if (!this.shared) this.wp[page] = 0; // shared memory keeps a uffd-wp marker
    this.poisoned[page] = 0;
    if (this.shared) return;
    this.backing.zero(page);
    for (const s of this.stagers) if (page >= s.first && page < s.last) s.fill(page);
  }
}

/** Regions are placed from here up, a guard page apart, so that no two are adjacent. */
const BASE = 0x7e0000000000n;
const GUARD = 2n * 1024n * 1024n;

/** Every mapping of the simulated process, by address. */
class AddressSpace {
  private readonly mappings: Mapping[] = [];
  private next = BASE;

  map(length: number, backing: Backing, hugetlb: boolean): Mapping {
    const align = BigInt(Math.max(backing.pageSize, 4096));
    const start = (this.next + align - 1n) / align * align;
    this.next = start + BigInt(length) + GUARD;
    const m = new Mapping(start, length, backing, hugetlb);
    this.mappings.push(m);
    return m;
  }

  unmap(m: Mapping): void {
    const i = this.mappings.indexOf(m);
    if (i >= 0) this.mappings.splice(i, 1);
    m.removed = true;
    m.backing.detach();
  }

  /** The mapping holding `address`, or null (no VMA there). */
  find(address: bigint): Mapping | null {
    for (const m of this.mappings) if (address >= m.start && address < m.end) return m;
    return null;
  }

  /** The mapping holding all of [start, start + length), or null. */
  findRange(start: bigint, length: number): Mapping | null {
    const m = this.find(start);
    return m !== null && start + BigInt(length) <= m.end ? m : null;
  }

  all(): readonly Mapping[] {
    return this.mappings;
  }
}

export const addressSpace = new AddressSpace();
