/**
 * One restored task served from pages read asynchronously (pages-N.img over HTTP: --pages-url):
 * the way criu lazy-pages serves from a remote page server. Every message of the task's
 * userfaultfd is handled here, in JavaScript, in the order the kernel gave them (a read cannot
 * be answered on the reader thread): the pages still to serve are runs (criu-lazy-iovs.ts);
 * a fault takes a window of its run out and reads it; REMOVE and UNMAP drop pages, REMAP moves
 * them, FORK copies them for the child (pages being read are read again for it, as criu does).
 * A read that completes installs only what is still wanted where it is now. After "FTSR" the
 * rest is pushed, in chunks growing from 64 KiB to 4 MiB, back to 64 KiB after each fault.
 */
import type { PageFault, RemapEvent, RemoveEvent, UnmapEvent } from '../base/types';
import type { Userfaultfd } from '../core/userfaultfd';
import type { PageSource } from '../sources/page-source';
import type { CustomSpec } from '../sources/custom-source';
import { describeError } from '../base/errors';
import { CriuError } from './criu-errors';
import type { TaskImages } from './criu-images';
import { Iov, LazyIovs } from './criu-lazy-iovs';
import type { ServedTask, TaskHooks, TaskSummary } from './criu-task';

const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 4 * 1024 * 1024;
/** Bytes read for a demand fault: its page and what follows it in its run. */
const DEMAND_WINDOW = 256 * 1024;
/** Background reads in flight at most (demand reads are never held back). */
const PUSHES = 2;
const RETRIES = 3;
const TIMEOUT_MS = 10_000;

/** One uffd of the task (or of a fork child) and what it still lacks. */
interface Tracker {
  uffd: Userfaultfd;
  child: number;
  lazyPages: number;
  iovs: LazyIovs;
  /** Pages being read, where they are now. */
  reqs: LazyIovs;
  chunk: number;
  faults: number;
  filled: number;
  exited: boolean;
}

export class RemoteTask implements ServedTask {
  private readonly trackers: Tracker[] = [];
  /** The pages file's runs by dump address: [imgStart, imgEnd, fileOffset], sorted. */
  private readonly places: Array<[number, number, number]> = [];
  private readonly spec: CustomSpec;
  private filling = false;
  private pushes = 0;
  private children = 0;
  private closed = false;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((resolve) => { this.resolveDone = resolve; });

  constructor(readonly pid: number, uffd: Userfaultfd, images: TaskImages, pages: PageSource, private readonly hooks: TaskHooks) {
    this.spec = pages.custom!;
    const iovs: Iov[] = [];
    for (const a of images.areas) {
      for (const r of a.runs) {
        const start = Number(a.start) + r.offset;
        this.places.push([start, start + r.length, r.sourceOffset]);
        iovs.push({ start, end: start + r.length, imgStart: start });
      }
    }
    this.places.sort((x, y) => x[0] - y[0]);
    this.track(uffd, 0, images.lazyPages, new LazyIovs(iovs));
  }

  private track(uffd: Userfaultfd, child: number, lazyPages: number, iovs: LazyIovs): Tracker {
    const t: Tracker = {
      uffd, child, lazyPages, iovs, reqs: new LazyIovs(), chunk: MIN_CHUNK, faults: 0, filled: 0, exited: false,
    };
    this.trackers.push(t);
    uffd.on('pagefault', (f: PageFault) => this.fault(t, f));
    uffd.on('remove', (e: RemoveEvent) => this.drop(t, Number(e.start), Number(e.end), true));
    uffd.on('unmap', (e: UnmapEvent) => this.drop(t, Number(e.start), Number(e.end), false));
    uffd.on('remap', (e: RemapEvent) => {
      t.iovs.remap(Number(e.from), Number(e.to), e.length);
      t.reqs.remap(Number(e.from), Number(e.to), e.length);
    });
    uffd.on('fork', (e: { uffd: Userfaultfd }) => {
      // The child's memory is the parent's at the fork: what the parent lacks (pages being
      // read for it included, read again for the child).
      const iovs = t.iovs.copy();
      iovs.add(t.reqs.copy().take(0, Number.MAX_SAFE_INTEGER));
      this.track(e.uffd, ++this.children, 0, iovs);
      this.pump();
    });
    uffd.on('error', (e: Error & { code?: string }) => this.fatal(t, describeError(e)));
    return t;
  }

  private fault(t: Tracker, f: PageFault): void {
    const ps = t.uffd.pageSize;
    const page = Number(f.address - (f.address % BigInt(ps)));
    t.faults++;
    t.chunk = MIN_CHUNK;
    if (t.reqs.find(page)) return; // being read: its copy wakes the fault
    const iov = t.iovs.find(page);
    if (iov === undefined) {
      // Not a lazy page (a hole of the dump, memory grown since, a page dropped): zeros.
      this.ioctl(t, () => t.uffd.zeropage({ start: BigInt(page), length: ps }), BigInt(page));
      return;
    }
    this.read(t, t.iovs.take(page, Math.min(iov.end, page + DEMAND_WINDOW))[0], false);
  }

  /** MADV_DONTNEED (remove) or munmap (unmap): those pages are never filled again. */
  private drop(t: Tracker, start: number, end: number, removed: boolean): void {
    t.iovs.take(start, end);
    const reading = t.reqs.take(start, end);
    // A thread waiting for a page being read faults again, and gets the zeros it now has.
    if (removed && reading.length > 0) this.ioctl(t, () => t.uffd.wake({ start: BigInt(start), length: end - start }), null);
  }

  /** Reads `piece`'s bytes and installs what of it is still wanted, where it is then. */
  private read(t: Tracker, piece: Iov, push: boolean): void {
    t.reqs.add([piece]);
    const imgStart = piece.imgStart;
    const length = piece.end - piece.start;
    if (push) this.pushes++;
    this.fetch(imgStart, length).then((bytes) => {
      if (push) this.pushes--;
      if (this.closed || t.exited) return;
      this.install(t, imgStart, imgStart + length, bytes, push);
      this.settle(t);
      this.pump();
    }, (e: Error) => {
      if (push) this.pushes--;
      if (!this.closed) this.fatal(t, `reading ${length} bytes of the pages at dump address 0x${imgStart.toString(16)}: ${describeError(e)}`);
    });
  }

  /** The bytes of the pages at dump addresses [imgStart, imgStart + length), one run of the file. */
  private async fetch(imgStart: number, length: number): Promise<Uint8Array> {
    const place = this.places.find((p) => imgStart >= p[0] && imgStart < p[1])!;
    const offset = place[2] + imgStart - place[0];
    let last: Error | undefined;
    for (let attempt = 0; attempt <= RETRIES; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** (attempt - 1)));
      try {
        const got = await this.spec.read(offset, length, { signal: AbortSignal.timeout(TIMEOUT_MS) });
        const bytes = got instanceof Uint8Array ? got : new Uint8Array(got);
        if (bytes.byteLength < length) throw new Error(`a short read: ${bytes.byteLength} of ${length} bytes`);
        return bytes;
      } catch (e) {
        last = e as Error;
        if ((e as { retryable?: boolean }).retryable === false) break;
      }
    }
    throw last!;
  }

  /** Copies the pieces of dump range [imgA, imgB) still being read for `t`, where they are now. */
  private install(t: Tracker, imgA: number, imgB: number, bytes: Uint8Array, push: boolean): void {
    const pieces = t.reqs.take(0, Number.MAX_SAFE_INTEGER); // the reads in flight: a few
    const others = pieces.filter((p) => p.imgStart < imgA || p.imgStart >= imgB);
    t.reqs.add(others);
    for (const p of pieces) {
      if (p.imgStart < imgA || p.imgStart >= imgB) continue;
      const src = bytes.subarray(p.imgStart - imgA, p.imgStart - imgA + p.end - p.start);
      const copied = this.copy(t, p.start, src);
      if (copied < 0) return; // the task exited
      if (push) t.filled += copied / t.uffd.pageSize;
      if (copied < p.end - p.start) {
        // An event waits to be read (EAGAIN): the rest once it has been.
        const rest = { start: p.start + copied, end: p.end, imgStart: p.imgStart + copied };
        t.reqs.add([rest]);
        setTimeout(() => {
          if (this.closed || t.exited) return;
          this.install(t, rest.imgStart, rest.imgStart + rest.end - rest.start, src.subarray(copied), push);
          this.settle(t);
          this.pump();
        }, 1);
      }
    }
  }

  /**
   * UFFDIO_COPY of `src` at `dst`, skipping pages that are in already. Returns the bytes
   * handled (fewer: an event waits to be handled first), or -1 if the task exited. The uffd
   * has orderedAnswers: a copy never runs ahead of the layout events handled here.
   */
  private copy(t: Tracker, dst: number, src: Uint8Array): number {
    const ps = t.uffd.pageSize;
    let pos = 0;
    let step = src.byteLength;
    while (pos < src.byteLength) {
      try {
        pos += t.uffd.copy(BigInt(dst + pos), src.subarray(pos, Math.min(src.byteLength, pos + step)));
      } catch (e) {
        const err = e as { code?: string; bytes?: number };
        if (err.code === 'EAGAIN') return pos + (err.bytes ?? 0);
        if (err.code === 'EEXIST') {
          pos += (err.bytes ?? 0) + ps;
          continue;
        }
        if (err.code === 'ESRCH') return this.exited(t);
        if (err.code === 'ENOENT' && step > ps) {
          step = ps; // one ioctl stays in one VMA: the program split this run (mprotect)
          continue;
        }
        if (err.code === 'ENOENT') {
          pos += ps; // not registered any more: no fault can come for it
          continue;
        }
        this.fatal(t, `installing a page at 0x${(dst + pos).toString(16)}: ${describeError(e as Error)}`);
        return -1;
      }
    }
    return pos;
  }

  /** A zeropage or wake, with the same answers to what the kernel says as copy(). */
  private ioctl(t: Tracker, op: () => unknown, page: bigint | null): void {
    try {
      op();
    } catch (e) {
      const code = (e as { code?: string }).code;
      // EEXIST: in already; EAGAIN: an event comes first (orderedAnswers). The thread is woken:
      // it faults again, and is answered then.
      if ((code === 'EEXIST' || code === 'EAGAIN') && page !== null) this.ioctl(t, () => t.uffd.wake({ start: page, length: t.uffd.pageSize }), null);
      else if (code === 'ESRCH') this.exited(t);
      else if (code !== 'ENOENT' && code !== 'EAGAIN' && !t.uffd.closed) this.fatal(t, describeError(e as Error));
    }
  }

  private exited(t: Tracker): number {
    t.exited = true;
    t.iovs.take(0, Number.MAX_SAFE_INTEGER);
    t.reqs.take(0, Number.MAX_SAFE_INTEGER);
    this.settle(t);
    return -1;
  }

  fill(): void {
    this.filling = true;
    this.pump();
    for (const t of this.trackers) this.settle(t);
  }

  /** Background reads: the first run of each uffd that lacks pages, a chunk at a time. */
  private pump(): void {
    if (!this.filling || this.closed) return;
    for (const t of this.trackers) {
      while (this.pushes < PUSHES && !t.exited && !t.iovs.empty) {
        const first = t.iovs.first()!;
        const piece = t.iovs.take(first.start, Math.min(first.end, first.start + t.chunk))[0];
        t.chunk = Math.min(t.chunk + MIN_CHUNK, MAX_CHUNK);
        this.read(t, piece, true);
      }
    }
  }

  private settle(t: Tracker): void {
    if (!this.filling || !(t.iovs.empty && t.reqs.empty)) return;
    if (this.trackers.every((x) => x.exited || (x.iovs.empty && x.reqs.empty))) this.resolveDone();
  }

  private fatal(t: Tracker, why: string): void {
    this.hooks.fatal(new CriuError('ERR_CRIU_SOURCE', `pid ${this.pid}${t.child ? ` (fork child ${t.child})` : ''}: ${why}`));
  }

  summaries(): TaskSummary[] {
    return this.trackers.map((t) => {
      const s: TaskSummary = { pid: this.pid, lazyPages: t.lazyPages, faults: t.faults, filled: t.filled, prefetched: 0, exited: t.exited };
      if (t.child !== 0) s.child = t.child;
      return s;
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.trackers) t.uffd.close();
  }
}
