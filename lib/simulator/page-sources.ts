/**
 * Served ranges for the simulator: the same page sources and read-ahead as
 * native/sources/page_source.cc, answering faults without a 'pagefault' event. JS thread only.
 */
import * as fs from 'fs';
import { uffdError } from '../base/errors';
import { regionSpanOf } from '../core/region';
import { sparseSize } from '../sources/page-source';
import type { PageSource, SparseRun } from '../sources/page-source';
import type { Mapping, Stager } from './address-space';
import type { Outcome } from './context';
import type { FaultStats } from '../base/fault-stats';

/** Adaptive read-ahead cap, as native ServedRanges::kMaxWindow. */
export const MAX_WINDOW = 4 * 1024 * 1024;

/** Where a served range's bytes come from; bytes past size() read as zeros. */
export interface Source {
  readonly size: number;
  /** The bytes at [offset, offset + length); throws (an fs error) when the file cannot be read. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
  /** Whether the byte at `offset` is the source's (false: a hole of a sparse source, or past its end). */
  holds(offset: number): boolean;
}

/** The range ioctls a served range answers with (the SimUserfaultfd's context). */
export interface Filler {
  copy(dst: bigint, src: Uint8Array): Outcome;
  zeropage(dst: bigint, length: number): Outcome;
  wake(start: bigint, length: number): void;
  /** mincore: whether the page at `address` is in memory (null when nothing is mapped there). */
  resident(address: bigint): boolean | null;
}

export type FillResult = 'answered' | 'failed' | 'not-served';

/** Writes the source's bytes into the missing pages of [start, start + length) of `m`, now and after each dontneed. */
export function stage(m: Mapping, start: bigint, length: number, source: Source,
                      readsZero: (address: bigint) => boolean = () => false): Stager {
  const first = m.pageOf(start);
  const stager: Stager = {
    first,
    last: first + length / m.pageSize,
    fill(p) {
      if (m.removed || m.mapped[p] || m.poisoned[p] || (m.shared && m.backing.cached[p])) return;
      if (readsZero(m.addressOf(p))) return; // a removed span of a removed: 'zero' range
      const offset = Number(m.addressOf(p) - start);
      if (offset >= source.size) return; // zeros already
      try {
        const bytes = source.read(offset, Math.min(m.pageSize, source.size - offset));
        new Uint8Array(m.backing.memory, p * m.pageSize, m.pageSize).set(bytes);
      } catch {
        // Unreadable now: the fault will say so; the page stays zero until then.
      }
    },
  };
  for (let p = stager.first; p < stager.last; p++) stager.fill(p);
  m.stagers.push(stager);
  return stager;
}

/** Withdraws what `stager` wrote: missing pages read as the kernel's fresh (zero) pages again. */
export function unstage(m: Mapping, stager: Stager): void {
  const i = m.stagers.indexOf(stager);
  if (i < 0) return;
  m.stagers.splice(i, 1);
  for (let p = stager.first; p < stager.last && !m.removed; p++) {
    if (!m.mapped[p] && !m.poisoned[p] && !(m.shared && m.backing.cached[p])) m.backing.zero(p);
  }
}

/** One sequential reader that adaptive read-ahead follows. */
interface Stream {
  nextExpected: bigint;
  window: number; // 0 = unused
  lastUse: number;
}

/** Interleaved sequential readers tracked per range (native kStreams). */
const STREAMS = 4;

interface Range {
  id: number;
  start: bigint;
  length: number;
  source: Source;
  fixedWindow: number; // 0 = adaptive
  streams: Stream[];
  /** serve({ removed: 'zero' }): spans dropped later (REMOVE) read as zeros; sorted, disjoint. */
  zeroRemoved: boolean;
  removed: Array<[bigint, bigint]>;
  /** The mapping's page size: the base page, or the huge page size for hugetlb (whole huge pages, no ZEROPAGE). */
  unit: number;
}

const newStream = (): Stream => ({ nextExpected: 0n, window: 0, lastUse: 0 });

/** Opens the source now, so that a missing or unreadable file throws at serve(). */
export function openSource(source: PageSource): Source {
  const base = openBase(source);
  return source.runs === null ? base : sparse(base, source.runs);
}

function openBase(source: PageSource): Source {
  if (source.kind === 'zero') return { size: 0, read: () => new Uint8Array(0), close: () => undefined, holds: () => false };
  if (source.kind === 'buffer') {
    const bytes = servedBytes(source.bytes!);
    const skip = Math.min(source.offset, bytes.byteLength);
    const size = bytes.byteLength - skip;
    return {
      size,
      read: (offset, length) => bytes.subarray(skip + offset, skip + offset + length),
      close: () => undefined,
      holds: (offset) => offset < size,
    };
  }
  return openFile(source.file!, source.offset);
}

/**
 * The bytes a buffer source serves: an ArrayBuffer can be detached (transferred) while served,
 * so it is copied, as native does; a SharedArrayBuffer cannot, and a Region's memory stays its.
 */
function servedBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof ArrayBuffer && regionSpanOf(bytes) === null) return bytes.slice();
  return bytes;
}

export function openFile(file: string | number, offset: number): Source {
  const path = typeof file === 'string' ? file : undefined;
  let fd: number;
  if (path !== undefined) {
    try {
      // O_NONBLOCK, as native: a FIFO would otherwise block the JS thread in open(2) forever.
      fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    } catch (e) {
      throw uffdError((e as NodeJS.ErrnoException).code ?? 'EIO', 'open', undefined, path);
    }
  } else {
    fd = file as number;
  }
  let owned = path !== undefined;
  // The same checks, in the same order, as native MakeFileSource: an fd that is no open file
  // ('dup'), not a regular file ('open'), not readable ('read').
  let size: number;
  try {
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
    } catch (e) {
      throw Object.assign(e as Error, { syscall: 'dup' });
    }
    if (!st.isFile() && !st.isBlockDevice()) {
      throw Object.assign(new Error('not a regular file'), {
        code: st.isDirectory() ? 'EISDIR' : 'EINVAL', syscall: 'open',
        detail: st.isDirectory() ? undefined : `${path ?? 'fd'} is not a regular file or a block device`,
      });
    }
    try {
      fs.readSync(fd, new Uint8Array(1), 0, 1, 0);
    } catch (e) {
      throw Object.assign(e as Error, { syscall: 'read' });
    }
    const fileSize = st.isBlockDevice() ? blockDeviceSize(st) : st.size;
    size = offset < fileSize ? fileSize - offset : 0;
  } catch (e) {
    if (owned) fs.closeSync(fd);
    const err = e as NodeJS.ErrnoException & { detail?: string };
    throw uffdError(err.code ?? 'EIO', err.syscall ?? 'open', undefined, err.detail ?? path);
  }
  if (!owned) {
    // The kernel backend serves a duplicate of the caller's fd, which may then close its own.
    const copy = reopen(fd);
    if (copy !== null) {
      fd = copy;
      owned = true;
    }
  }
  return {
    size,
    read(at, length) {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + at + done);
        if (n === 0) break; // the file shrank since serve(): the rest reads as zeros
        done += n;
      }
      return out;
    },
    close() {
      if (owned) fs.closeSync(fd);
    },
    holds: (at) => at < size,
  };
}

/** A sparse view (PageSource.sparse): the runs' bytes from the base, zeros between them. */
function sparse(base: Source, runs: readonly SparseRun[]): Source {
  const runAt = (offset: number): SparseRun | undefined => runs.find((r) => offset >= r.offset && offset < r.offset + r.length);
  return {
    size: sparseSize(runs),
    read(offset, length) {
      const out = new Uint8Array(length);
      for (const r of runs) {
        const a = Math.max(offset, r.offset);
        const b = Math.min(offset + length, r.offset + r.length);
        if (a >= b) continue;
        const from = r.sourceOffset + a - r.offset;
        const n = Math.max(0, Math.min(b - a, base.size - from));
        if (n > 0) out.set(base.read(from, n).subarray(0, n), a - offset);
      }
      return out;
    },
    close: () => base.close(),
    holds(offset) {
      const r = runAt(offset);
      return r !== undefined && base.holds(r.sourceOffset + offset - r.offset);
    },
  };
}

/** A block device's size (fstat says 0): sysfs counts 512-byte sectors. */
function blockDeviceSize(st: fs.Stats): number {
  const major = Math.floor(st.rdev / 256) & 0xfff;
  const minor = (st.rdev & 0xff) | (Math.floor(st.rdev / 4096) & 0xfff00);
  try {
    return Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512;
  } catch {
    throw Object.assign(new Error('block device size unknown'), { code: 'ENOTSUP', syscall: 'ioctl' });
  }
}

/** A second fd on the file `fd` has open (Node cannot dup): null where the OS offers no way. */
export function reopen(fd: number): number | null {
  for (const dir of ['/proc/self/fd/', '/dev/fd/']) {
    try {
      return fs.openSync(dir + fd, 'r');
    } catch {
      // try the next way
    }
  }
  return null;
}

/** The served ranges of one SimUserfaultfd and their read-ahead state. */
export class ServedRanges {
  private readonly ranges: Range[] = [];
  private nextId = 1;
  private clock = 0;

  constructor(private readonly pageSize: number) {}

  add(start: bigint, length: number, source: Source, readahead: number, zeroRemoved = false, unit = this.pageSize): number {
    const id = this.nextId++;
    const fixedWindow = readahead === 0 ? 0 : Math.ceil(Math.max(readahead, unit) / unit) * unit;
    this.ranges.push({
      id, start, length, source, fixedWindow, streams: Array.from({ length: STREAMS }, newStream),
      zeroRemoved, removed: [], unit,
    });
    return id;
  }

  remove(id: number): void {
    const i = this.ranges.findIndex((r) => r.id === id);
    if (i < 0) return;
    this.ranges[i].source.close();
    this.ranges.splice(i, 1);
  }

  clear(): void {
    for (const r of this.ranges) r.source.close();
    this.ranges.length = 0;
  }

  /**
   * Pages in [start, end) were dropped (REMOVE/UNMAP): read-ahead starts over; with `removed`
   * (a REMOVE), ranges served with removed: 'zero' remember the span (native ServedRanges::Forget).
   */
  forget(start: bigint, end: bigint, removed = false): void {
    for (const r of this.ranges) {
      const rEnd = r.start + BigInt(r.length);
      if (!(start < rEnd && end > r.start)) continue;
      r.streams = r.streams.map(newStream);
      if (removed && r.zeroRemoved) r.removed = mergeSpan(r.removed, maxBig(start, r.start), minBig(end, rEnd));
    }
  }

  /**
   * fill(): installs every page of every range that holds source bytes and is not in yet; a
   * page dropped from a removed: 'zero' range is left as it is (native ServedRanges::FillSome,
   * here at once). Returns the pages installed.
   */
  fillAll(f: Filler): number {
    let pages = 0;
    for (const r of this.ranges) {
      for (let off = 0; off < r.length; off += r.unit) {
        const at = r.start + BigInt(off);
        if (!r.source.holds(off) || r.removed.some(([a, b]) => at >= a && at < b)) continue;
        if (f.resident(at) !== false) continue; // in already, or nothing mapped there
        const n = Math.min(r.unit, r.source.size - off);
        const bytes = new Uint8Array(r.unit);
        bytes.set(r.source.read(off, n).subarray(0, n));
        if (f.copy(at, bytes).bytes > 0) pages += r.unit / this.pageSize;
      }
    }
    return pages;
  }

  /** Whether `address` lies in a removed span of a removed: 'zero' range. */
  readsZero(address: bigint): boolean {
    return this.ranges.some((r) => r.removed.some(([a, b]) => address >= a && address < b));
  }

  /** Answers a missing-page fault at `address` when a served range holds it. */
  answer(address: bigint, f: Filler, stats: FaultStats): { result: FillResult; err?: string } {
    const r = this.ranges.find((x) => address >= x.start && address < x.start + BigInt(x.length));
    if (!r) return { result: 'not-served' };
    const t0 = process.hrtime.bigint();
    const page = address - (address % BigInt(r.unit));
    const rangeEnd = r.start + BigInt(r.length);
    // The window never leaves the served range.
    let end = minBig(page + BigInt(this.windowFor(r, page)), rangeEnd);
    for (const [a, b] of r.removed) { // removed spans read as zeros; read-ahead stops at them
      if (page >= a && page < b) return this.zeroRemoved(r, page, f, stats);
      if (a > page) {
        end = minBig(end, a);
        break;
      }
    }
    if (r.fixedWindow === 0) {
      for (const s of r.streams) if (s.lastUse === this.clock) s.nextExpected = end;
    }
    const out = this.fill(r, page, Number(end - page), f, stats);
    if (out.result === 'answered') stats.recordLatency(Number(process.hrtime.bigint() - t0));
    return out;
  }

  /**
   * A fault where a tracked sequential reader was expected next doubles that reader's window
   * (up to MAX_WINDOW); any other fault starts a new reader, in place of the least recently
   * used one, with a one-page window (native ServedRanges::WindowFor).
   */
  private windowFor(r: Range, page: bigint): number {
    if (r.fixedWindow !== 0) return r.fixedWindow;
    this.clock++;
    let lru = r.streams[0];
    let hit: Stream | null = null;
    for (const s of r.streams) {
      if (s.window !== 0 && s.nextExpected === page) {
        hit = s;
        break;
      }
      if (s.lastUse < lru.lastUse) lru = s;
    }
    if (hit === null) {
      hit = lru;
      hit.window = r.unit;
    } else {
      hit.window = Math.min(hit.window * 2, Math.max(MAX_WINDOW, r.unit));
    }
    hit.lastUse = this.clock;
    return hit.window;
  }

  /** A removed page of a removed: 'zero' range: one zero page (native ServedRanges::ZeroRemoved). */
  private zeroRemoved(r: Range, page: bigint, f: Filler, stats: FaultStats): { result: FillResult; err?: string } {
    const res = this.zeros(r, page, r.unit, f);
    if (res.bytes > 0) {
      stats.countResolve(res.bytes);
      return { result: 'answered' };
    }
    if (res.err === 'EEXIST') {
      f.wake(page, r.unit);
      stats.countWake();
      return { result: 'answered' };
    }
    return { result: 'failed', err: res.err ?? 'EIO' };
  }

  /** Zeros at [dst, dst + n): ZEROPAGE, or for huge pages (no ZEROPAGE) a copy of zeros. */
  private zeros(r: Range, dst: bigint, n: number, f: Filler): Outcome {
    return r.unit === this.pageSize ? f.zeropage(dst, n) : f.copy(dst, new Uint8Array(n));
  }

  /** One COPY (or ZEROPAGE) of up to one window from the source at dst. */
  private fillOnce(r: Range, dst: bigint, length: number, f: Filler, stats: FaultStats): Outcome {
    const size = r.source.size;
    const so = Number(dst - r.start);
    let n = Math.min(length, Math.max(MAX_WINDOW, r.unit));
    let res: Outcome;
    try {
      if (so >= size) {
        res = this.zeros(r, dst, n, f);
      } else if (size - so >= r.unit) {
        n = Math.min(n, Math.floor((size - so) / r.unit) * r.unit);
        res = f.copy(dst, r.source.read(so, n));
      } else {
        // The source ends inside this page: its bytes, then zeros.
        const tail = new Uint8Array(r.unit);
        tail.set(r.source.read(so, size - so));
        res = f.copy(dst, tail);
      }
    } catch (e) {
      return { bytes: 0, err: (e as NodeJS.ErrnoException).code ?? 'EIO' };
    }
    if (res.bytes > 0) stats.countResolve(res.bytes);
    return res;
  }

  /**
   * Fills [dst, dst + length) from the source, as native ServedRanges::Fill: the first page is
   * the faulting one and must be answered; the rest is read-ahead, given up quietly on error.
   * Present pages are skipped (EEXIST), partial copies resumed (EAGAIN with bytes done).
   */
  private fill(r: Range, dst: bigint, length: number, f: Filler, stats: FaultStats): { result: FillResult; err?: string } {
    let pos = 0;
    while (pos < length) {
      const res = this.fillOnce(r, dst + BigInt(pos), length - pos, f, stats);
      if (res.bytes > 0) {
        pos += res.bytes;
        continue; // done, or partial: what stopped it shows on the next ioctl
      }
      if (res.err === 'EEXIST') {
        if (pos === 0) {
          // The faulting page is there already: its thread only needs waking.
          f.wake(dst, r.unit);
          stats.countWake();
        }
        pos = Number(this.nextAbsent(dst + BigInt(pos + r.unit), dst + BigInt(length), r.unit, f) - dst);
        continue;
      }
      if (pos > 0) return { result: 'answered' };
      if (res.err === 'ENOENT') f.wake(dst, r.unit); // unregistered or unmapped: let it retry
      return { result: 'failed', err: res.err ?? 'EIO' };
    }
    return { result: 'answered' };
  }

  /** The first page at or after `from` (below `end`) not in memory, looking one window ahead. */
  private nextAbsent(from: bigint, end: bigint, unit: number, f: Filler): bigint {
    const span = minBig(end - from, BigInt(Math.max(MAX_WINDOW, unit)));
    if (span <= 0n) return end;
    for (let a = from; a < from + span; a += BigInt(unit)) {
      const resident = f.resident(a);
      if (resident === null) return from; // mincore fails: the copy will tell why
      if (!resident) return a;
    }
    return from + span;
  }
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** [a, b) merged into sorted, disjoint spans. */
function mergeSpan(spans: Array<[bigint, bigint]>, a: bigint, b: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let placed = false;
  for (const [x, y] of spans) {
    if (y < a) {
      out.push([x, y]);
    } else if (x > b) {
      if (!placed) out.push([a, b]);
      placed = true;
      out.push([x, y]);
    } else {
      a = minBig(a, x);
      b = maxBig(b, y);
    }
  }
  if (!placed) out.push([a, b]);
  return out;
}
