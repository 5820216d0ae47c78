/**
 * Region over simulated memory: an ArrayBuffer at a fake address, whose read/write touch the
 * pages in order and wait on userfaults as a thread-pool thread would. JS thread only.
 */
import { HUGE_PAGE_SIZE, PAGE_SIZE } from '../base/constants';
import { uffdError, UffdError } from '../base/errors';
import { Region } from '../core/region';
import type { MapOptions, Protection } from '../base/types';
import { addressSpace, Backing, detachBuffer, Mapping, PageOwner, PROT_NONE, PROT_READ, PROT_READWRITE } from './address-space';
import { touch, UffdContext } from './context';
import { allocateFd, releaseFd } from './fds';

const PROT = { none: PROT_NONE, read: PROT_READ, readwrite: PROT_READWRITE } as const;

/**
 * Accesses waiting on a fault keep the process alive, as a thread-pool request does in the
 * kernel backend (a blocked pool thread holds the loop until the fault is answered).
 */
let pendingAccesses = 0;
let keepAlive: ReturnType<typeof setInterval> | null = null;
function accessStarted(): void {
  if (pendingAccesses++ === 0) keepAlive = setInterval(() => undefined, 0x7fffffff);
}
function accessEnded(): void {
  if (--pendingAccesses === 0 && keepAlive !== null) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

/**
 * The simulated thread pool: as many accesses run at once as libuv has threads
 * (UV_THREADPOOL_SIZE, default 4); the others wait their turn, so that a handler that waits for
 * a fifth fault before answering four hangs here as it does on the kernel backend.
 */
const POOL_SIZE = (() => {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
})();
const freeThreads = Array.from({ length: POOL_SIZE }, (_, i) => i);
const queuedAccesses: Array<(thread: number) => void> = [];

function takeThread(): Promise<number> {
  const t = freeThreads.shift();
  return t !== undefined ? Promise.resolve(t) : new Promise((resolve) => queuedAccesses.push(resolve));
}

function giveBackThread(t: number): void {
  const next = queuedAccesses.shift();
  if (next) next(t);
  else freeThreads.push(t);
}

/** A pool thread's fake id: never the process id (the JS thread's). */
function threadId(thread: number): number {
  return process.pid + 1 + thread;
}

export class SimRegion extends Region {
  readonly backend = 'simulator' as const;
  readonly address: bigint;
  readonly length: number;
  private readonly mapping: Mapping;
  private readonly fdNumber: number;
  private isUnmapped = false;
  private detached: ArrayBuffer | null = null;

  static create(length: number, options: MapOptions): SimRegion {
    const pageSize = options.hugetlb === true ? HUGE_PAGE_SIZE : PAGE_SIZE;
    return new SimRegion(new Backing(length, options.shared === true, pageSize), options);
  }

  private constructor(backing: Backing, options: MapOptions) {
    super(options);
    this.mapping = addressSpace.map(backing.length, backing, options.hugetlb === true);
    this.address = this.mapping.start;
    this.length = backing.length;
    this.fdNumber = backing.shared ? allocateFd() : -1;
  }

  /** The simulated memfd of a shared region (a fake number >= 1000), else -1. */
  get fd(): number {
    return this.isUnmapped ? -1 : this.fdNumber;
  }
  get unmapped(): boolean {
    return this.isUnmapped;
  }
  /** The memory itself. After unmap(): a detached (private) or empty (shared) buffer. */
  get buffer(): ArrayBuffer {
    if (this.isUnmapped) return this.detached ?? new ArrayBuffer(0);
    // A shared region's memory is also its aliases': only a private one has a single owner
    // that a view of it can be traced back to (serve() refuses a source viewing what it answers).
    return this.shared ? this.mapping.backing.memory : this.noteBuffer(this.mapping.backing.memory);
  }

  protected _read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    return this.access(offset, length, false, (at, memory, pos, n) => {
      out.set(new Uint8Array(memory, at, n), pos);
    }).then(() => out);
  }

  protected _write(offset: number, data: Uint8Array): Promise<void> {
    const bytes = Uint8Array.from(data); // taken now, as the native write takes its copy
    return this.access(offset, bytes.byteLength, true, (at, memory, pos, n) => {
      new Uint8Array(memory, at, n).set(bytes.subarray(pos, pos + n));
    });
  }

  /** Touches the pages in order; each waits for its fault to be answered before the next. */
  private async access(offset: number, length: number, write: boolean,
                       move: (at: number, memory: ArrayBuffer, pos: number, n: number) => void): Promise<void> {
    const m = this.mapping;
    m.inFlight++;
    accessStarted();
    // The access starts on "another thread": after this call returns, when one is free.
    const thread = await takeThread();
    try {
      const tid = threadId(thread);
      const end = offset + length;
      let at = offset;
      while (at < end) {
        const p = Math.floor(at / m.pageSize);
        const pageEnd = Math.min((p + 1) * m.pageSize, end);
        for (;;) {
          const t = touch(m, p, write);
          if (t.kind === 'ok') break;
          if (t.kind === 'signal') throw signalError(t.signal, m.addressOf(p), write);
          // The page's address, or with EXACT_ADDRESS the first byte this access touches in it.
          const address = t.ctx.has('EXACT_ADDRESS') ? m.start + BigInt(at) : m.addressOf(p);
          await waitFor(t.ctx, address, t.flags, tid);
        }
        move(at, m.backing.memory, at - offset, pageEnd - at);
        at = pageEnd;
      }
    } finally {
      giveBackThread(thread);
      accessEnded();
      if (--m.inFlight === 0 && this.isUnmapped) this.release();
    }
  }

  protected _dontneed(offset: number, length: number): void {
    const m = this.mapping;
    const first = offset / m.pageSize;
    const last = (offset + length) / m.pageSize;
    // One REMOVE per run of pages registered by one context (one VMA) with EVENT_REMOVE.
    let runStart = first;
    for (let p = first; p <= last; p++) {
      if (p < last && m.owner[p] === m.owner[runStart]) continue;
      const ctx = m.owner[runStart];
      if (ctx && ctx.has('EVENT_REMOVE')) {
        ctx.postEvent({ type: 'remove', start: m.addressOf(runStart), end: m.addressOf(p) });
      }
      runStart = p;
    }
    for (let p = first; p < last; p++) m.zap(p);
  }

  protected _protect(offset: number, length: number, protection: Protection): void {
    const m = this.mapping;
    m.prot.fill(PROT[protection], offset / m.pageSize, (offset + length) / m.pageSize);
  }

  protected _alias(): Region {
    return new SimRegion(this.mapping.backing, { shared: true, hugetlb: this.hugetlb });
  }

  protected _residentPages(): number {
    const m = this.mapping;
    // mincore: a shared mapping reports its page cache, a private one its present pages.
    const pages = m.shared ? m.backing.cached : m.mapped;
    let n = 0;
    for (let p = 0; p < m.pages; p++) n += pages[p];
    return n;
  }

  protected _unmap(): void {
    this.isUnmapped = true;
    const backing = this.mapping.backing;
    if (!backing.shared) {
      // The user's buffer is detached now; accesses in flight go on over the same bytes.
      this.detached = backing.memory;
      backing.memory = detachBuffer(backing.memory);
    }
    if (this.mapping.inFlight === 0) this.release();
  }

  /** The munmap itself, once no access is in flight: UNMAP events, the address range freed. */
  private release(): void {
    const m = this.mapping;
    if (m.removed) return;
    const told = new Set<PageOwner>();
    for (const ctx of m.owner) {
      if (ctx === null || told.has(ctx)) continue;
      told.add(ctx);
      if (ctx.has('EVENT_UNMAP')) ctx.postEvent({ type: 'unmap', start: m.start, end: m.end });
    }
    addressSpace.unmap(m);
    if (this.fdNumber >= 0) releaseFd(this.fdNumber);
  }
}

function waitFor(ctx: UffdContext, address: bigint, flags: number, tid: number): Promise<void> {
  return new Promise((resolve) => ctx.addWaiter(address, flags, tid, resolve));
}

/** What the kernel would deliver as a signal (and kill the process with): a rejection here. */
function signalError(signal: 'SIGBUS' | 'SIGSEGV', address: bigint, write: boolean): UffdError {
  return uffdError(signal, write ? 'write' : 'read', undefined,
    `at 0x${address.toString(16)}; the kernel backend would kill the process with ${signal}`);
}
