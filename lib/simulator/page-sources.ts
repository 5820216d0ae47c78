/**
 * Served ranges for the simulator: the same page sources and read-ahead as
 * native/page_source.cc, answering faults without a 'pagefault' event. JS thread only.
 */
import * as fs from 'fs';
import { uffdError } from '../errors';
import type { PageSource } from '../page-source';
import type { Outcome } from './context';
import type { FaultStats } from './stats';

/** Adaptive read-ahead cap, as native ServedRanges::kMaxWindow. */
export const MAX_WINDOW = 4 * 1024 * 1024;

/** Where a served range's bytes come from; bytes past size() read as zeros. */
interface Source {
  readonly size: number;
  /** The bytes at [offset, offset + length); throws (an fs error) when the file cannot be read. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

/** The range ioctls a served range answers with (the SimUserfaultfd's context). */
export interface Filler {
  copy(dst: bigint, src: Uint8Array): Outcome;
  zeropage(dst: bigint, length: number): Outcome;
  wake(start: bigint, length: number): void;
}

export type FillResult = 'answered' | 'failed' | 'not-served';

interface Range {
  id: number;
  start: bigint;
  length: number;
  source: Source;
  fixedWindow: number; // 0 = adaptive
  window: number;
  nextExpected: bigint;
}

/** Opens the source now, so that a missing or unreadable file throws at serve(). */
export function openSource(source: PageSource): Source {
  if (source.kind === 'zero') return { size: 0, read: () => new Uint8Array(0), close: () => undefined };
  if (source.kind === 'buffer') {
    const bytes = source.bytes!;
    const skip = Math.min(source.offset, bytes.byteLength);
    return {
      size: bytes.byteLength - skip,
      read: (offset, length) => bytes.subarray(skip + offset, skip + offset + length),
      close: () => undefined,
    };
  }
  return openFile(source.file!, source.offset);
}

function openFile(file: string | number, offset: number): Source {
  let fd: number;
  let owned = false;
  if (typeof file === 'string') {
    try {
      fd = fs.openSync(file, 'r');
      owned = true;
    } catch (e) {
      throw uffdError((e as NodeJS.ErrnoException).code ?? 'EIO', 'open', undefined, file);
    }
  } else {
    fd = file;
  }
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL', syscall: 'mmap' });
    size = offset < st.size ? st.size - offset : 0;
  } catch (e) {
    if (owned) fs.closeSync(fd);
    const err = e as NodeJS.ErrnoException;
    throw uffdError(err.code ?? 'EIO', err.syscall === 'mmap' ? 'mmap' : 'dup');
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
  };
}

/** The served ranges of one SimUserfaultfd and their read-ahead state. */
export class ServedRanges {
  private readonly ranges: Range[] = [];
  private nextId = 1;

  constructor(private readonly pageSize: number) {}

  add(start: bigint, length: number, source: Source, readahead: number): number {
    const id = this.nextId++;
    this.ranges.push({ id, start, length, source, fixedWindow: readahead, window: this.pageSize, nextExpected: -1n });
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

  /** Pages in [start, end) were dropped (REMOVE/UNMAP): read-ahead starts over. */
  forget(start: bigint, end: bigint): void {
    for (const r of this.ranges) {
      if (start < r.start + BigInt(r.length) && end > r.start) {
        r.window = this.pageSize;
        r.nextExpected = -1n;
      }
    }
  }

  /** Answers a missing-page fault at `address` when a served range holds it. */
  answer(address: bigint, f: Filler, stats: FaultStats): { result: FillResult; err?: string } {
    const r = this.ranges.find((x) => address >= x.start && address < x.start + BigInt(x.length));
    if (!r) return { result: 'not-served' };
    const t0 = process.hrtime.bigint();
    const page = address - (address % BigInt(this.pageSize));
    const end = minBig(page + BigInt(this.windowFor(r, page)), r.start + BigInt(r.length));
    r.nextExpected = end;
    const out = this.fill(r, page, Number(end - page), f, stats);
    if (out.result === 'answered') stats.recordLatency(Number(process.hrtime.bigint() - t0));
    return out;
  }

  /** Grows while the faults are sequential, back to one page on a jump. */
  private windowFor(r: Range, page: bigint): number {
    if (r.fixedWindow !== 0) return r.fixedWindow;
    r.window = page === r.nextExpected ? Math.min(r.window * 2, MAX_WINDOW) : this.pageSize;
    return r.window;
  }

  /**
   * Copies [dst, dst + length) from the source, as native ServedRanges::Fill: the first page is
   * the faulting one and must be answered; the rest is read-ahead, given up quietly on error.
   */
  private fill(r: Range, dst: bigint, length: number, f: Filler, stats: FaultStats): { result: FillResult; err?: string } {
    const size = r.source.size;
    let pos = 0;
    while (pos < length) {
      const so = Number(dst - r.start) + pos;
      const chunk = Math.min(length - pos, MAX_WINDOW);
      let res: Outcome;
      try {
        if (so >= size) {
          res = f.zeropage(dst + BigInt(pos), chunk);
        } else if (size - so >= this.pageSize) {
          const n = Math.min(chunk, Math.floor((size - so) / this.pageSize) * this.pageSize);
          res = f.copy(dst + BigInt(pos), r.source.read(so, n));
        } else {
          const tail = new Uint8Array(this.pageSize);
          tail.set(r.source.read(so, size - so));
          res = f.copy(dst + BigInt(pos), tail);
        }
      } catch (e) {
        res = { bytes: 0, err: (e as NodeJS.ErrnoException).code ?? 'EIO' };
      }
      if (res.bytes > 0) {
        stats.countResolve(res.bytes);
        stats.countWake();
        pos += res.bytes;
        if (res.err === null || res.err === 'EAGAIN') continue;
      }
      if (res.err === null) continue;
      if (res.err === 'EEXIST') {
        // Answered already (another thread's fault on the same page): wake, skip the page.
        if (pos === 0) {
          f.wake(dst, this.pageSize);
          stats.countWake();
        }
        pos += this.pageSize;
        continue;
      }
      if (pos > 0) return { result: 'answered' };
      return { result: 'failed', err: res.err };
    }
    return { result: 'answered' };
  }
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
