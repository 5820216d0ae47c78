/**
 * A shared image filled from a JavaScript source (PageSource.custom or http): the clones' faults
 * on pages the image lacks reach JavaScript, from any uffd, and wait here by image offset. One
 * CustomServer reads the source in image space (offset 0 is the image's first byte), so its
 * windows, deduplication, retries and timeouts hold across clones: a window read for one clone
 * fills the image for all of them, and every clone waiting on it is answered. Pages present
 * already are answered natively on the kernel (only absent pages come here). JS thread only.
 */
import type { PageFault, Range } from '../base/types';
import { CustomServer } from '../sources/custom-server';
import type { CustomSpec, FaultAnswerer } from '../sources/custom-source';
import { SourceCounters } from '../sources/custom-source';

/** What a clone's uffd answers with: the custom-source ioctls, and CONTINUE for 'minor' images. */
export interface CloneAnswerer extends FaultAnswerer {
  continue(range: Range): number;
}

/** What a backend's image store does for the filler (core/shared-image.ts ImageStore). */
export interface FillTarget {
  /** Bytes read for [offset, offset + bytes.length); pages present already stay as they are. */
  write(offset: number, bytes: Uint8Array): void;
  present(offset: number): boolean;
  /** A clone's fault at `page`, whose image page (at `offset`) is present now: map it in. */
  answer(uffd: CloneAnswerer, page: bigint, offset: number, minor: boolean): void;
}

/** One clone's fault waiting on the source. */
export interface CloneFault {
  uffd: CloneAnswerer;
  /** The clone's first byte (its image offset 0). */
  start: bigint;
  fault: PageFault;
  minor: boolean;
  /** Reports a failed read on the clone's uffd ('error' event). */
  report(err: Error, fault?: PageFault): void;
}

interface Waiting extends CloneFault {
  page: bigint;
}

export class ImageFiller {
  readonly counters = new SourceCounters();
  private readonly server: CustomServer;
  private readonly waiting = new Map<number, Waiting[]>();
  private stopped = false;
  /** The reporter of the clone answered last by onError: a failed read's 'error' goes to it. */
  private lastReport: CloneFault['report'] | null = null;

  constructor(private readonly target: FillTarget, spec: CustomSpec, size: number, private readonly pageSize: number) {
    const answerer: FaultAnswerer = {
      pageSize,
      get closed() {
        return false;
      },
      copy: (dst, src) => this.filled(Number(dst), src),
      zeropage: (r) => this.privately(r, 'zeropage'),
      poison: (r) => this.privately(r, 'poison'),
      wake: (r) => this.wake(r),
    };
    // span 0: a window read is written whole, into the image every clone reads.
    this.server = new CustomServer(answerer, 0n, size, spec, 0, this.counters, (err) => this.lastReport?.(err));
  }

  /** A clone's fault on a page the image lacked when its reader looked. */
  fault(f: CloneFault): void {
    const page = f.fault.address - (f.fault.address % BigInt(this.pageSize));
    const offset = Number(page - f.start);
    const w: Waiting = { ...f, page };
    if (this.stopped || this.target.present(offset)) {
      this.answer(w, offset);
      return;
    }
    const list = this.waiting.get(offset);
    if (list) list.push(w);
    else this.waiting.set(offset, [w]);
    this.server.fault({ ...f.fault, address: BigInt(offset) });
  }

  /** The image closed with no clone left: reads in flight are dropped; nobody waits any more. */
  stop(): void {
    this.stopped = true;
    this.server.stop();
    for (const [offset, list] of this.waiting) for (const w of list) this.answer(w, offset);
    this.waiting.clear();
  }

  /** The server read a window: into the image, then every clone waiting in it maps its page. */
  private filled(offset: number, bytes: Uint8Array): number {
    this.target.write(offset, bytes);
    this.each(offset, bytes.byteLength, (w, at) => this.answer(w, at));
    return bytes.byteLength;
  }

  /**
   * A read that failed (onError) or a page past the source's end: each waiting clone gets its
   * own zero or poisoned page, and the image stays without it (another clone's touch reads again).
   */
  private privately(r: Range, how: 'zeropage' | 'poison'): number {
    this.each(Number(r.start), r.length, (w) => {
      const range = { start: w.page, length: this.pageSize };
      this.lastReport = w.report;
      try {
        if (how === 'poison') {
          try {
            w.uffd.poison(range);
            return;
          } catch (err) {
            if ((err as { code?: string }).code === 'EEXIST') throw err;
          }
        }
        w.uffd.zeropage(range);
      } catch (err) {
        ignoreGone(err, () => w.uffd.wake(range));
      }
    });
    return r.length;
  }

  /** Faults on a window the server had written already: present pages are mapped, others retried. */
  private wake(r: Range): void {
    this.each(Number(r.start), r.length, (w, at) => this.answer(w, at));
  }

  private each(offset: number, length: number, fn: (w: Waiting, offset: number) => void): void {
    for (let at = offset; at < offset + length; at += this.pageSize) {
      const list = this.waiting.get(at);
      if (!list) continue;
      this.waiting.delete(at);
      for (const w of list) fn(w, at);
    }
  }

  /** Maps the page in the clone, or wakes it to fault again (the page was dropped meanwhile). */
  private answer(w: Waiting, offset: number): void {
    const range = { start: w.page, length: this.pageSize };
    try {
      if (this.target.present(offset)) this.target.answer(w.uffd, w.page, offset, w.minor);
      else w.uffd.wake(range);
    } catch (err) {
      ignoreGone(err, () => w.uffd.wake(range));
    }
  }
}

/** A clone that is gone (unmapped, its uffd closed, its process exited) needs no answer. */
function ignoreGone(err: unknown, onExists: () => void): void {
  const code = (err as { code?: string }).code;
  if (code === 'EEXIST') onExists();
  else if (code !== 'ENOENT' && code !== 'ESRCH' && code !== 'ERR_OUT_OF_RANGE') throw err;
}
