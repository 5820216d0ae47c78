/**
 * The custom source serving one range of one uffd (PageSource.custom and PageSource.http;
 * custom-source.ts holds the spec). Backend-independent: faults arrive as 'pagefault' messages
 * on the JS thread and are answered with uffd.copy/zeropage/poison/wake, so the kernel and the
 * simulator share this one implementation. JS thread only.
 *
 * What the read function never has to get right itself:
 * - windows: a fault asks for the chunkSize-aligned window around it; faults on a window whose
 *   read is in flight join that read (counted as `deduplicated`);
 * - back-pressure: at most `concurrency` reads in flight, the rest queued in fault order;
 * - cache: a window whose pages are not all copied yet (serve's `readahead` smaller than the
 *   window) stays cached, bounded by `cacheSize` bytes, least recently used dropped first;
 * - retries with exponential backoff and a per-attempt timeout, so a read that never settles
 *   cannot hold a fault: a fault waits at most (retries + 1) x timeoutMs plus the backoff;
 * - failure: the faulting pages are answered by `onError` ('sigbus': UFFDIO_POISON, the page
 *   raises SIGBUS when touched, region.read rejects with code 'SIGBUS'; 'zeropage') and an
 *   'error' event names the bytes and the cause;
 * - the bytes: copied when read() settles, so a buffer the caller reuses, detaches or shrinks
 *   afterwards changes nothing served; and nothing is thrown out of the fault path: a copy that
 *   fails for a reason of its own is answered by onError too, never left waiting.
 *
 * Over 450 lines as one cohesive thing: one class whose windows, read queue, cache, retries and
 * answers share the same per-window state; split, each part would reach into the others'.
 */
/* eslint max-lines: ["error", 560] -- one cohesive thing: the header says why */
import { setMaxListeners } from 'events';
import type { UffdError } from '../base/errors';
import type { PageFault } from '../base/types';
import { CustomSpec, FaultAnswerer, sourceError, SourceCounters } from './custom-source';

const MAX_BACKOFF_MS = 2000;

interface Waiter {
  fault: PageFault;
  page: bigint;
  t0: bigint;
}

/** One chunkSize-aligned window of the source. */
interface Window {
  index: number;
  /** Source offset of its first byte (= offset in the served range). */
  offset: number;
  /** Bytes read from the source (the window clipped to the source and the range). */
  readLength: number;
  /** Bytes copied: readLength rounded up to whole pages. */
  copyLength: number;
  waiters: Waiter[];
  bytes: Uint8Array | null;
  /** Per page: 0 not known to be present, 1 copied or found present. */
  present: Uint8Array;
  missing: number;
}

type CopyOutcome = 'done' | 'gone' | 'busy';

/** The custom source serving one range of one uffd. */
export class CustomServer {
  private size: number | undefined;
  private readonly windows = new Map<number, Window>();
  /** Windows waiting for a read slot: those a fault waits on first, then read-ahead. */
  private readonly queue: Window[] = [];
  private readonly ahead: Window[] = [];
  /** Cached windows, least recently used first (Map keeps insertion order). */
  private readonly cache = new Map<number, Window>();
  private cachedBytes = 0;
  private active = 0;
  private opening: Promise<void> | null = null;
  private readonly beforeOpen: Waiter[] = [];
  private readonly stopping = new AbortController();
  private stopped = false;
  private readonly page: number;
  /** Per window: 1 once fetched and copied whole (read-ahead skips it). */
  private readonly done: Uint8Array;
  /** The window of the last fault that started a read: the next one means a sequential reader. */
  private lastDemand = -2;
  /** Pages of copied windows whose fault was answered by a wake alone (see route()). */
  private readonly woken = new Set<bigint>();
  /** serve's `record`: per page, touched yet; and the first touches in order, [page, write] pairs. */
  private touched: Uint8Array | null = null;
  private readonly touches: number[] = [];

  /** `span`: bytes copied per fault from a fetched window (0: the whole window). */
  constructor(
    private readonly uffd: FaultAnswerer,
    readonly start: bigint,
    readonly length: number,
    private readonly spec: CustomSpec,
    private readonly span: number,
    private readonly counters: SourceCounters,
    private readonly report: (err: Error, fault?: PageFault) => void,
  ) {
    this.size = spec.size;
    this.page = uffd.pageSize;
    this.done = new Uint8Array(Math.ceil(length / spec.chunkSize));
    // One listener per attempt in flight or backing off, each removed when it ends: not a leak.
    setMaxListeners(0, this.stopping.signal);
  }

  covers(address: bigint): boolean {
    return address >= this.start && address < this.start + BigInt(this.length);
  }

  /** Records first touches from now on (serve's `record`): each fault, before it is answered. */
  record(): void {
    this.touched ??= new Uint8Array(this.length / this.page);
  }

  /** The first touches, as [firstPage, pageCount, write] triples in touch order (lib/sources/working-set.ts). */
  recorded(): Uint32Array {
    const out: number[] = [];
    for (let i = 0; i < this.touches.length; i += 2) {
      const [p, write] = [this.touches[i], this.touches[i + 1]];
      const n = out.length;
      if (n > 0 && out[n - 3] + out[n - 2] === p && out[n - 1] === write) out[n - 2]++;
      else out.push(p, 1, write);
    }
    return Uint32Array.from(out);
  }

  /** A missing-page fault in this range. */
  fault(fault: PageFault): void {
    const page = fault.address - (fault.address % BigInt(this.page));
    const w: Waiter = { fault, page, t0: process.hrtime.bigint() };
    if (this.touched !== null) {
      const p = Number(page - this.start) / this.page;
      if (this.touched[p] === 0) {
        this.touched[p] = 1;
        this.touches.push(p, fault.write ? 1 : 0);
      }
    }
    if (this.size === undefined) {
      this.beforeOpen.push(w);
      this.opening ??= this.open();
      return;
    }
    this.routeSafely(w);
  }

  /** route(), whose unexpected failure (an ioctl refused for a reason of its own) fails the fault. */
  private routeSafely(w: Waiter): void {
    try {
      this.route(w);
    } catch (err) {
      this.fail([w], err as Error, Number(w.page - this.start), this.page);
    }
  }

  /**
   * Stops serving: reads in flight are aborted, their results ignored. Returns the faults
   * still waiting, for the uffd to hand to its JS handlers (or its fallback).
   */
  stop(): PageFault[] {
    if (this.stopped) return [];
    this.stopped = true;
    this.stopping.abort();
    const waiting = this.beforeOpen.splice(0).map((w) => w.fault);
    for (const win of this.windows.values()) for (const w of win.waiters.splice(0)) waiting.push(w.fault);
    this.windows.clear();
    this.queue.length = 0;
    this.ahead.length = 0;
    this.cache.clear();
    this.cachedBytes = 0;
    return waiting;
  }

  private route(w: Waiter): void {
    const offset = Number(w.page - this.start);
    if (offset >= this.size!) {
      this.answerZero(w);
      return;
    }
    const index = Math.floor(offset / this.spec.chunkSize);
    if (this.done[index] && !this.woken.delete(w.page)) {
      // Most faults on a window copied whole were raised before its copy and read after it:
      // a wake answers them. A page really dropped since faults again, and is read again then.
      this.woken.add(w.page);
      this.uffd.wake({ start: w.page, length: this.page });
      this.answered(w);
      return;
    }
    const cached = this.cache.get(index);
    if (cached) {
      this.counters.cacheHits++;
      this.cache.delete(index); // most recently used: to the end
      this.cache.set(index, cached);
      this.answerFrom(cached, [w]);
      return;
    }
    let win = this.windows.get(index);
    if (win) {
      this.counters.deduplicated++;
      win.waiters.push(w);
      const i = this.ahead.indexOf(win);
      if (i >= 0) this.queue.push(...this.ahead.splice(i, 1)); // a fault waits on it now
      return;
    }
    win = this.newWindow(index);
    win.waiters.push(w);
    this.windows.set(index, win);
    this.queue.push(win);
    if (index === this.lastDemand + 1) this.readAhead(index);
    this.lastDemand = index;
    this.pump();
  }

  /**
   * A sequential reader: the windows after `index` are read too, as many as leave one read slot
   * free, so that the reader finds them copied instead of waiting a round trip per window.
   */
  private readAhead(index: number): void {
    const end = Math.min(this.done.length, Math.ceil(this.size! / this.spec.chunkSize));
    for (let i = index + 1; i < end && i < index + this.spec.concurrency; i++) {
      if (this.done[i] || this.windows.has(i) || this.cache.has(i)) continue;
      const win = this.newWindow(i);
      this.windows.set(i, win);
      this.ahead.push(win);
    }
  }

  private newWindow(index: number): Window {
    const offset = index * this.spec.chunkSize;
    const end = Math.min(offset + this.spec.chunkSize, this.length);
    const readLength = Math.min(end, this.size!) - offset;
    const copyLength = Math.min(Math.ceil(readLength / this.page) * this.page, end - offset);
    const pages = copyLength / this.page;
    return { index, offset, readLength, copyLength, waiters: [], bytes: null, present: new Uint8Array(pages), missing: pages };
  }

  /** Starts queued reads while fewer than `concurrency` are in flight. */
  private pump(): void {
    while (!this.stopped && this.active < this.spec.concurrency && this.queue.length + this.ahead.length > 0) {
      const win = this.queue.length > 0 ? this.queue.shift()! : this.ahead.shift()!;
      this.active++;
      void this.fetch(win).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async fetch(win: Window): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await this.attempts((signal) => this.readWindow(win, signal));
    } catch (err) {
      if (this.stopped) return;
      this.windows.delete(win.index);
      // A read-ahead nobody waits for fails quietly: a fault on the window reads it again.
      if (win.waiters.length > 0) this.fail(win.waiters.splice(0), err as Error, win.offset, win.readLength);
      return;
    }
    if (this.stopped) return;
    this.windows.delete(win.index);
    win.bytes = bytes;
    const waiters = win.waiters.splice(0);
    try {
      if (waiters.length === 0 && this.span === 0) this.copySpan(win, 0, win.copyLength, -1); // read ahead
      this.answerFrom(win, waiters);
    } catch (err) {
      this.fail(waiters, err as Error, win.offset, win.readLength);
    }
    if (win.missing === 0) this.done[win.index] = 1;
    if (win.missing > 0) this.keep(win);
  }

  /** One read of a window, checked and padded to whole pages. */
  private async readWindow(win: Window, signal: AbortSignal): Promise<Uint8Array> {
    const got = await this.spec.read(win.offset, win.readLength, { signal });
    // Copied now, before anything else runs: the bytes served are those of the settled promise.
    let bytes: Uint8Array | null = null;
    try {
      bytes = got instanceof Uint8Array ? got : got instanceof ArrayBuffer ? new Uint8Array(got) : null;
    } catch {
      bytes = new Uint8Array(0); // a detached ArrayBuffer: V8 refuses a view of it
    }
    if (bytes === null) {
      throw sourceError('ERR_UFFD_SOURCE_READ', `${this.spec.label}: read() must resolve to a Uint8Array or ArrayBuffer`, false);
    }
    if (bytes.byteLength < win.readLength) {
      throw sourceError('ERR_UFFD_SOURCE_SHORT_READ',
        `${this.spec.label}: read(${win.offset}, ${win.readLength}) returned ${bytes.byteLength} bytes`, true);
    }
    const out = new Uint8Array(win.copyLength); // past the source's end, inside the last page: zeros
    out.set(bytes.subarray(0, win.readLength));
    this.counters.bytesRead += win.readLength;
    return out;
  }

  /** Learns the size (and pins what the source pins) once, before any window is read. */
  private async open(): Promise<void> {
    try {
      const info = await this.attempts((signal) => this.spec.open!(signal), false);
      this.size = info.size;
    } catch (err) {
      if (this.stopped) return;
      this.opening = null; // the next fault tries again
      this.fail(this.beforeOpen.splice(0), err as Error, 0, this.length);
      return;
    }
    if (this.stopped) return;
    for (const w of this.beforeOpen.splice(0)) this.routeSafely(w);
  }

  /** `op` with a per-attempt timeout, up to `retries` more attempts after exponential backoff. */
  private async attempts<T>(op: (signal: AbortSignal) => Promise<T>, isRead = true): Promise<T> {
    let last: Error | undefined;
    for (let attempt = 0; attempt <= this.spec.retries; attempt++) {
      if (attempt > 0) {
        this.counters.retries++;
        await sleep(Math.min(this.spec.retryDelayMs * 2 ** (attempt - 1), MAX_BACKOFF_MS), this.stopping.signal);
      }
      if (this.stopped) throw last ?? new Error('stopped');
      try {
        return await this.once(op, isRead);
      } catch (err) {
        last = err as Error;
        if ((err as { retryable?: boolean }).retryable === false) break;
      }
    }
    throw last!;
  }

  /**
   * One attempt: failed when it times out or the server stops, even if `op` never settles
   * (its signal is aborted then, and no timer is left behind).
   */
  private async once<T>(op: (signal: AbortSignal) => Promise<T>, isRead: boolean): Promise<T> {
    const ac = new AbortController();
    const onStop = (): void => ac.abort(sourceError('ERR_UFFD_SOURCE_STOPPED', `${this.spec.label}: serving stopped`, false));
    this.stopping.signal.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(() => {
      this.counters.timeouts++;
      ac.abort(sourceError('ERR_UFFD_SOURCE_TIMEOUT', `${this.spec.label}: no answer within ${this.spec.timeoutMs} ms`, true));
    }, this.spec.timeoutMs);
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true });
    });
    if (isRead) this.counters.reads++;
    this.counters.inFlight++;
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.counters.inFlight);
    try {
      return await Promise.race([Promise.resolve().then(() => op(ac.signal)), aborted]);
    } finally {
      clearTimeout(timer);
      this.counters.inFlight--;
      this.stopping.signal.removeEventListener('abort', onStop);
    }
  }

  /** Copies each waiter's span of a fetched window and wakes it. */
  private answerFrom(win: Window, waiters: Waiter[]): void {
    for (const w of waiters) {
      if (this.stopped || this.uffd.closed) return;
      const at = Number(w.page - this.start) - win.offset;
      const from = this.span === 0 ? 0 : at;
      const to = this.span === 0 ? win.copyLength : Math.min(at + this.span, win.copyLength);
      const out = this.copySpan(win, from, to, at);
      if (out === 'busy') {
        // A non-cooperative event is queued and unread (EAGAIN): try again once it is read.
        setTimeout(() => this.answerSafely(win, w), 1).unref();
        continue;
      }
      if (out === 'done') this.answered(w);
    }
    if (win.missing === 0) this.uncache(win);
  }

  private answerSafely(win: Window, w: Waiter): void {
    try {
      this.answerFrom(win, [w]);
    } catch (err) {
      this.fail([w], err as Error, win.offset, win.readLength);
    }
  }

  /**
   * UFFDIO_COPY of [from, to) of the window, skipping the pages known present (a window shared by
   * several faults is copied once), except the faulting page `at`, always tried: it may have
   * been dropped since. Pages found present (EEXIST) are skipped, partial copies resumed (EAGAIN
   * with bytes done); the faulting page is woken if it was present already (another answer
   * raced this one).
   */
  private copySpan(win: Window, from: number, to: number, at: number): CopyOutcome {
    const base = this.start + BigInt(win.offset);
    const wanted = (pos: number): boolean => pos === at || win.present[pos / this.page] === 0;
    let wakeFault = false;
    let pos = from;
    while (pos < to) {
      while (pos < to && !wanted(pos)) pos += this.page;
      let end = pos;
      while (end < to && wanted(end)) end += this.page;
      while (pos < end) {
        try {
          const n = this.uffd.copy(base + BigInt(pos), win.bytes!.subarray(pos, end));
          this.mark(win, pos, n);
          pos += n;
        } catch (err) {
          const e = err as UffdError;
          if (e.code === 'EAGAIN' && typeof e.bytes === 'number' && e.bytes > 0) {
            this.mark(win, pos, e.bytes);
            pos += e.bytes;
          } else if (e.code === 'EEXIST') {
            this.mark(win, pos, this.page);
            if (pos === at) wakeFault = true;
            pos += this.page;
          } else if (e.code === 'EAGAIN') {
            return pos <= at ? 'busy' : 'done';
          } else if (e.code === 'ENOENT' || e.code === 'ESRCH' || this.uffd.closed) {
            return 'gone'; // unregistered, unmapped, or its owner exited: nobody waits any more
          } else {
            throw err;
          }
        }
      }
    }
    if (wakeFault) this.uffd.wake({ start: base + BigInt(at), length: this.page });
    return 'done';
  }

  private mark(win: Window, pos: number, bytes: number): void {
    for (let p = pos / this.page; p < (pos + bytes) / this.page; p++) {
      if (win.present[p] === 0) {
        win.present[p] = 1;
        win.missing--;
      }
    }
  }

  private keep(win: Window): void {
    if (win.copyLength > this.spec.cacheSize) return;
    this.cache.set(win.index, win);
    this.cachedBytes += win.copyLength;
    for (const [, old] of this.cache) {
      if (this.cachedBytes <= this.spec.cacheSize) break;
      this.uncache(old);
    }
  }

  private uncache(win: Window): void {
    if (this.cache.get(win.index) !== win) return;
    this.cache.delete(win.index);
    this.cachedBytes -= win.copyLength;
  }

  /** A page past the source's end: zeros, as buffer and file sources give. */
  private answerZero(w: Waiter): void {
    try {
      this.uffd.zeropage({ start: w.page, length: this.page });
    } catch (err) {
      const code = (err as UffdError).code;
      if (code === 'EEXIST') this.uffd.wake({ start: w.page, length: this.page });
      else if (code !== 'ENOENT' && code !== 'ESRCH' && !this.uffd.closed) throw err;
    }
    this.answered(w);
  }

  private answered(w: Waiter): void {
    this.counters.faults++;
    this.counters.latency.recordLatency(Number(process.hrtime.bigint() - w.t0));
  }

  /** A read that finally failed: each fault is answered by onError, then one 'error' names it all. */
  private fail(waiters: Waiter[], cause: Error, offset: number, length: number): void {
    this.counters.failures++;
    let answeredWith: string = this.spec.onError;
    for (const w of waiters) {
      if (this.uffd.closed) break;
      const used = this.fallback(w.page);
      if (used !== this.spec.onError) answeredWith = used;
    }
    const c = (cause as { code?: string }).code;
    const code = typeof c === 'string' && c.startsWith('ERR_UFFD_SOURCE_') ? c : 'ERR_UFFD_SOURCE_READ';
    const start = this.start + BigInt(offset);
    const error = sourceError(code,
      `${this.spec.label}: reading bytes ${offset}-${offset + length - 1} (memory at 0x${start.toString(16)}) failed` +
      `: ${cause.message}; ${waiters.length} fault(s) answered with ${answeredWith}`, undefined,
      { offset, length, start, answeredWith, cause, faults: waiters.map((w) => w.fault) });
    if (this.uffd.closed) return;
    try {
      this.report(error, waiters[0]?.fault);
    } catch (err) {
      // No 'error' listener: thrown as EventEmitter does, but out of this promise chain.
      process.nextTick(() => { throw err; });
    }
  }

  /**
   * Answers one page by onError. 'sigbus' poisons it (UFFDIO_POISON, Linux 6.6+): the
   * UFFD_FEATURE_SIGBUS alternative applies to every fault of the uffd from open() on, so it
   * cannot fail one page and serve the next. Where POISON is refused, a zero page answers and
   * the error event says 'zeropage'.
   */
  private fallback(page: bigint): string {
    const range = { start: page, length: this.page };
    let used: string = this.spec.onError;
    try {
      if (used === 'sigbus') {
        try {
          this.uffd.poison(range);
          return used;
        } catch (err) {
          if ((err as UffdError).code === 'EEXIST') throw err;
          used = 'zeropage';
        }
      }
      this.uffd.zeropage(range);
    } catch (err) {
      // Present already (EEXIST): woken. Anything else: woken too, the last way out, so that
      // the faulting thread retries instead of waiting; the 'error' event says why.
      if ((err as UffdError).code !== 'ENOENT' && (err as UffdError).code !== 'ESRCH' && !this.uffd.closed) {
        try {
          this.uffd.wake(range);
        } catch {
          // unregistered or closed meanwhile: nobody waits there any more
        }
      }
    }
    return used;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
