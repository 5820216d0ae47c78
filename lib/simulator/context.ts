/**
 * A simulated userfaultfd context: what the kernel's `struct userfaultfd_ctx` holds and what
 * every fd duplicated from one open (`fromFd`) shares — the registered pages, the threads
 * waiting on faults, the queue of unread messages. The range ioctls live here, with the
 * kernel's checks in the kernel's order (the kernel's mm/userfaultfd.c). JS thread only.
 */
import { constants, ioctlMask } from '../base/constants';
import type { UffdEvent } from '../core/userfaultfd';
import { addressSpace, Mapping, PageOwner, PROT_NONE, PROT_READWRITE } from './address-space';

const M = constants.modes;
const PF = constants.pagefaultFlags;

/** An ioctl's outcome as the kernel reports it: bytes done, and the errno name (or null). */
export interface Outcome {
  bytes: number;
  err: string | null;
}

const ok = (bytes: number): Outcome => ({ bytes, err: null });
const fail = (err: string): Outcome => ({ bytes: 0, err });

/** A thread stopped on a fault until a wake for its page. */
export interface Waiter {
  readonly ctx: UffdContext;
  readonly address: bigint;
  readonly flags: number;
  readonly tid: number;
  readonly wake: () => void;
  /** When the access stopped on the fault (process.hrtime.bigint()). */
  readonly at: bigint;
}

/** A message waiting to be read: a fault (with its waiter) or a non-cooperative event. */
export type Message = { kind: 'fault'; waiter: Waiter } | { kind: 'event'; event: UffdEvent };

/** The fd side of a context: a SimUserfaultfd whose reader is running. */
export interface Reader {
  onMessage(m: Message): void;
  /** Told synchronously when a non-cooperative event is posted (delivery comes later). */
  eventPosted(e: UffdEvent): void;
}

const BASIC_IOCTLS = ioctlMask(['wake', 'copy', 'zeropage', 'move', 'poison']);
const HUGETLB_IOCTLS = ioctlMask(['wake', 'copy', 'poison']);

export class UffdContext implements PageOwner {
  /** Open fds on this context; it is released with the last. */
  private fds = 0;
  private readonly readers: Reader[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly queue: Message[] = [];
  private deliveryScheduled = false;
  released = false;

  constructor(readonly featureBits: number) {}

  has(feature: keyof typeof constants.features): boolean {
    return (this.featureBits & constants.features[feature]) !== 0;
  }

  attach(): void {
    this.fds++;
  }

  /** An fd on this context closed; the last one releases it (userfaultfd_release). */
  detach(reader: Reader | null): void {
    if (reader) this.stopReading(reader);
    if (--this.fds > 0) return;
    this.released = true;
    this.queue.length = 0;
    for (const m of addressSpace.all()) {
      for (let p = 0; p < m.pages; p++) {
        if (m.owner[p] !== this) continue;
        m.owner[p] = null;
        m.mode[p] = 0;
        m.wp[p] = 0;
      }
    }
    this.wakeRange(0n, 0);
  }

  startReading(reader: Reader): void {
    if (!this.readers.includes(reader)) this.readers.push(reader);
    this.scheduleDelivery();
  }

  stopReading(reader: Reader): void {
    const i = this.readers.indexOf(reader);
    if (i >= 0) this.readers.splice(i, 1);
  }

  // ---- faults and messages --------------------------------------------------------------------

  /** Queues a fault message for `address`; `wake` is called when a wake covers it. */
  addWaiter(address: bigint, flags: number, tid: number, wake: () => void): void {
    const w: Waiter = { ctx: this, address, flags, tid, wake, at: process.hrtime.bigint() };
    this.waiters.add(w);
    this.post({ kind: 'fault', waiter: w });
  }

  /** A non-cooperative event (REMOVE, UNMAP): read in order with the faults. */
  postEvent(event: UffdEvent): void {
    if (this.released) return;
    for (const r of this.readers) r.eventPosted(event);
    this.post({ kind: 'event', event });
  }

  /** A read(2) by the thread itself (readSync): up to `max` queued messages, oldest first. */
  take(max: number): Message[] {
    return this.queue.splice(0, max);
  }

  private post(m: Message): void {
    this.queue.push(m);
    this.scheduleDelivery();
  }

  /** The reader reads asynchronously, in batches, as the fault-reader thread does. */
  private scheduleDelivery(): void {
    if (this.deliveryScheduled || this.readers.length === 0 || this.queue.length === 0) return;
    this.deliveryScheduled = true;
    setImmediate(() => {
      this.deliveryScheduled = false;
      while (this.queue.length > 0 && this.readers.length > 0) {
        this.readers[0].onMessage(this.queue.shift()!);
      }
    });
  }

  /** Wakes the waiters on pages in [start, start + length) (length 0: all), like wake_userfault. */
  wakeRange(start: bigint, length: number): void {
    const end = start + BigInt(length);
    const woken: Waiter[] = [];
    for (const w of this.waiters) {
      if (length === 0 || (w.address >= start && w.address < end)) woken.push(w);
    }
    if (woken.length === 0) return;
    for (const w of woken) this.waiters.delete(w);
    // A woken thread whose message was not read yet takes its message back with it.
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const m = this.queue[i];
      if (m.kind === 'fault' && woken.includes(m.waiter)) this.queue.splice(i, 1);
    }
    for (const w of woken) w.wake();
  }

  // ---- UFFDIO_REGISTER / UNREGISTER -----------------------------------------------------------

  register(start: bigint, length: number, mode: number): { mask: bigint } | { err: string } {
    const known = M.REGISTER_MISSING | M.REGISTER_WP | M.REGISTER_MINOR;
    if (mode === 0 || (mode & ~known) !== 0) return { err: 'EINVAL' };
    const m = addressSpace.findRange(start, length);
    if (m === null || !aligned(m, start, length)) return { err: 'EINVAL' };
    if ((mode & M.REGISTER_MINOR) && !m.shared && !m.hugetlb) return { err: 'EINVAL' };
    const [first, last] = pageSpan(m, start, length);
    for (let p = first; p < last; p++) {
      if (m.owner[p] !== null && m.owner[p] !== this) return { err: 'EBUSY' };
    }
    for (let p = first; p < last; p++) writtenThroughBuffer(m, p);
    for (let p = first; p < last; p++) {
      // A VMA this context registered with every asked mode already is left as it is.
      if (m.owner[p] === this && (m.mode[p] & mode) === mode) continue;
      m.owner[p] = this;
      m.mode[p] = mode;
    }
    let mask = m.hugetlb ? HUGETLB_IOCTLS : BASIC_IOCTLS;
    if (mode & M.REGISTER_WP) mask |= ioctlMask(['writeProtect']);
    if (mode & M.REGISTER_MINOR) mask |= ioctlMask(['continue']);
    return { mask };
  }

  unregister(start: bigint, length: number): string | null {
    const m = addressSpace.findRange(start, length);
    if (m === null || !aligned(m, start, length)) return 'EINVAL';
    const [first, last] = pageSpan(m, start, length);
    for (let p = first; p < last; p++) {
      if (m.owner[p] !== null && m.owner[p] !== this) return 'EINVAL';
    }
    for (let p = first; p < last; p++) {
      if (m.owner[p] !== this) continue;
      m.owner[p] = null;
      m.mode[p] = 0;
      m.wp[p] = 0;
    }
    this.wakeRange(start, length);
    return null;
  }

  // ---- the mfill family: COPY, ZEROPAGE, CONTINUE, POISON -------------------------------------

  /**
   * The destination checks every mfill ioctl shares: the range lies in one registered VMA
   * (ENOENT otherwise), and a WP mode needs a WP registration (EINVAL).
   */
  private mfillTarget(start: bigint, length: number, wantWp: boolean): Mapping | string {
    const m = addressSpace.findRange(start, length);
    if (m === null) return 'ENOENT';
    if (!aligned(m, start, length)) return 'EINVAL';
    const [first, last] = pageSpan(m, start, length);
    const owner = m.owner[first];
    const mode = m.mode[first];
    if (owner === null) return 'ENOENT';
    for (let p = first + 1; p < last; p++) {
      if (m.owner[p] !== owner || m.mode[p] !== mode) return 'ENOENT';
    }
    if (wantWp && (mode & M.REGISTER_WP) === 0) return 'EINVAL';
    return m;
  }

  copy(dst: bigint, src: Uint8Array, mode: number): Outcome {
    const t = this.mfillTarget(dst, src.byteLength, (mode & M.COPY_WP) !== 0);
    if (typeof t === 'string') return fail(t);
    return this.fill(t, dst, src.byteLength, (mode & M.COPY_DONTWAKE) !== 0, (p, offset) => {
      // COPY takes a poison marker for an empty slot (pte_none_mostly); ZEROPAGE does not.
      if (t.present(p) || (t.shared && t.backing.cached[p])) return 'EEXIST';
      const bytes = new Uint8Array(t.backing.memory, p * t.pageSize, t.pageSize);
      bytes.set(src.subarray(offset, offset + t.pageSize));
      this.install(t, p, (mode & M.COPY_WP) !== 0);
      return null;
    });
  }

  zeropage(start: bigint, length: number, mode: number): Outcome {
    const t = this.mfillTarget(start, length, false);
    if (typeof t === 'string') return fail(t);
    if (t.hugetlb) return fail('EINVAL');
    return this.fill(t, start, length, (mode & M.ZEROPAGE_DONTWAKE) !== 0, (p) => {
      if (t.present(p) || t.poisoned[p] || (t.shared && t.backing.cached[p])) return 'EEXIST';
      t.backing.zero(p);
      this.install(t, p, false);
      return null;
    });
  }

  continue(start: bigint, length: number, mode: number): Outcome {
    const t = this.mfillTarget(start, length, (mode & M.CONTINUE_WP) !== 0);
    if (typeof t === 'string') return fail(t);
    if (!t.shared) return fail('EINVAL');
    return this.fill(t, start, length, (mode & M.CONTINUE_DONTWAKE) !== 0, (p) => {
      if (t.present(p)) return 'EEXIST'; // a poison marker is replaced, as by COPY
      if (!t.backing.cached[p]) return 'EFAULT';
      this.install(t, p, (mode & M.CONTINUE_WP) !== 0);
      return null;
    });
  }

  poison(start: bigint, length: number, mode: number): Outcome {
    const t = this.mfillTarget(start, length, false);
    if (typeof t === 'string') return fail(t);
    return this.fill(t, start, length, (mode & M.POISON_DONTWAKE) !== 0, (p) => {
      if (t.present(p) || t.poisoned[p]) return 'EEXIST';
      t.poisoned[p] = 1;
      return null;
    });
  }

  private install(m: Mapping, p: number, wp: boolean): void {
    m.mapped[p] = 1;
    m.poisoned[p] = 0;
    m.wp[p] = wp ? 1 : 0;
    if (m.shared) m.backing.cached[p] = 1;
  }

  /** Page by page; stops at the first error: EAGAIN with the bytes done, or the error itself. */
  private fill(m: Mapping, start: bigint, length: number, dontWake: boolean,
               page: (p: number, offset: number) => string | null): Outcome {
    const first = m.pageOf(start);
    const count = length / m.pageSize;
    let done = 0;
    let err: string | null = null;
    for (; done < count; done++) {
      err = page(first + done, done * m.pageSize);
      if (err !== null) break;
    }
    return this.finish(start, done * m.pageSize, length, err, dontWake);
  }

  /** Wakes what was done (unless dontWake); a partial result is EAGAIN with the bytes. */
  private finish(start: bigint, bytes: number, length: number, err: string | null, dontWake: boolean): Outcome {
    if (bytes === 0 && err !== null) return fail(err);
    if (!dontWake) this.wakeRange(start, bytes);
    return bytes === length ? ok(bytes) : { bytes, err: 'EAGAIN' };
  }

  // ---- UFFDIO_MOVE ----------------------------------------------------------------------------

  move(dst: bigint, src: bigint, length: number, mode: number): Outcome {
    const d = addressSpace.find(dst);
    const s = addressSpace.find(src);
    if (d === null || s === null) return fail('ENOENT');
    if (d.shared || s.shared || d.hugetlb || s.hugetlb) return fail('EINVAL');
    if (dst + BigInt(length) > d.end || src + BigInt(length) > s.end) return fail('EINVAL');
    const [df, dl] = pageSpan(d, dst, length);
    const [sf, sl] = pageSpan(s, src, length);
    // dst: one VMA that this context registered; src: one VMA, both writable.
    for (let p = df; p < dl; p++) {
      if (d.owner[p] !== this || d.mode[p] !== d.mode[df] || d.prot[p] !== PROT_READWRITE) return fail('EINVAL');
    }
    for (let p = sf; p < sl; p++) {
      if (s.owner[p] !== s.owner[sf] || s.mode[p] !== s.mode[sf] || s.prot[p] !== PROT_READWRITE) return fail('EINVAL');
    }
    const count = length / d.pageSize;
    let done = 0;
    let err: string | null = null;
    for (; done < count; done++) {
      const dp = df + done;
      const sp = sf + done;
      if (d.present(dp) || d.poisoned[dp]) {
        err = 'EEXIST';
        break;
      }
      if (!s.present(sp)) {
        if (mode & M.MOVE_ALLOW_SRC_HOLES) continue;
        err = 'ENOENT';
        break;
      }
      new Uint8Array(d.backing.memory, dp * d.pageSize, d.pageSize)
        .set(new Uint8Array(s.backing.memory, sp * s.pageSize, s.pageSize));
      s.zap(sp);
      d.mapped[dp] = 1;
      d.wp[dp] = 0;
    }
    return this.finish(dst, done * d.pageSize, length, err, (mode & M.MOVE_DONTWAKE) !== 0);
  }

  // ---- UFFDIO_WRITEPROTECT --------------------------------------------------------------------

  writeProtect(start: bigint, length: number, mode: number): string | null {
    if ((mode & M.WRITEPROTECT_WP) && (mode & M.WRITEPROTECT_DONTWAKE)) return 'EINVAL';
    const m = addressSpace.findRange(start, length);
    if (m === null) return 'ENOENT';
    if (!aligned(m, start, length)) return 'EINVAL';
    const [first, last] = pageSpan(m, start, length);
    for (let p = first; p < last; p++) {
      if (m.owner[p] === null || (m.mode[p] & M.REGISTER_WP) === 0) return 'ENOENT';
    }
    const protect = (mode & M.WRITEPROTECT_WP) !== 0;
    for (let p = first; p < last; p++) {
      // Anonymous memory: only present pages carry the bit. Shared memory: a marker is left on
      // unmapped pages too (file-backed memory always uses uffd-wp markers).
      // UFFD_FEATURE_WP_UNPOPULATED: anonymous memory gets the marker on unpopulated pages too.
      if (m.present(p) || m.shared || !protect || this.has('WP_UNPOPULATED')) m.wp[p] = protect ? 1 : 0;
    }
    if (!protect && (mode & M.WRITEPROTECT_DONTWAKE) === 0) this.wakeRange(start, length);
    return null;
  }
}

// ---- touching memory ----------------------------------------------------------------------------

/** What an access to one page needs before it can go on. */
export type Touch =
  | { kind: 'ok' }
  | { kind: 'fault'; ctx: UffdContext; flags: number }
  | { kind: 'signal'; signal: 'SIGBUS' | 'SIGSEGV' };

const OK: Touch = { kind: 'ok' };

/**
 * One page of a read or write, as the MMU and the fault handler see it: poisoned pages and
 * protections raise signals; a missing page in a MISSING range, a write to a write-protected
 * page in a WP range, or a page-cache page not yet mapped in a MINOR range raises a userfault;
 * anything else is mapped on the spot (zero-filled), as ordinary memory is.
 */
export function touch(m: Mapping, p: number, write: boolean): Touch {
  const t = userfault(m, p, write);
  // UFFD_FEATURE_SIGBUS: the kernel raises SIGBUS in place of every userfault message.
  if (t.kind === 'fault' && t.ctx.has('SIGBUS')) return { kind: 'signal', signal: 'SIGBUS' };
  return t;
}

function userfault(m: Mapping, p: number, write: boolean): Touch {
  if (m.poisoned[p]) return { kind: 'signal', signal: 'SIGBUS' };
  if (m.prot[p] === PROT_NONE || (write && m.prot[p] !== PROT_READWRITE)) return { kind: 'signal', signal: 'SIGSEGV' };
  const ctx = m.owner[p] as UffdContext | null; // only UffdContext.register sets an owner
  const mode = ctx ? m.mode[p] : 0;
  const writeFlag = write ? PF.WRITE : 0;
  if (!m.present(p)) {
    if (m.shared && m.backing.cached[p]) {
      if (mode & M.REGISTER_MINOR) return { kind: 'fault', ctx: ctx!, flags: PF.MINOR | writeFlag };
    } else if (mode & M.REGISTER_MISSING) {
      return { kind: 'fault', ctx: ctx!, flags: writeFlag };
    }
    m.mapped[p] = 1;
    if (m.shared) m.backing.cached[p] = 1;
  }
  if (write && m.wp[p]) {
    // WP_ASYNC: the kernel resolves the fault itself, clearing the bit (the page reads as written).
    if ((mode & M.REGISTER_WP) && !ctx!.has('WP_ASYNC')) return { kind: 'fault', ctx: ctx!, flags: PF.WP | PF.WRITE };
    m.wp[p] = 0;
  }
  return OK;
}

/**
 * A write through `region.buffer` raises no simulated fault, so it cannot mark its page
 * present as the kernel's page table would. At registration, when it starts to matter, a page
 * of a private mapping whose bytes are not all zero (and that no served range staged) was
 * written: it is present. A page written with zeros only stays missing (the one difference).
 */
function writtenThroughBuffer(m: Mapping, p: number): void {
  if (m.present(p) || m.shared || m.stagers.some((s) => p >= s.first && p < s.last)) return;
  const bytes = new Uint8Array(m.backing.memory, p * m.pageSize, m.pageSize);
  if (bytes.some((b) => b !== 0)) m.mapped[p] = 1;
}

function aligned(m: Mapping, start: bigint, length: number): boolean {
  return (start - m.start) % BigInt(m.pageSize) === 0n && length % m.pageSize === 0;
}

function pageSpan(m: Mapping, start: bigint, length: number): [number, number] {
  const first = m.pageOf(start);
  return [first, first + Math.ceil(length / m.pageSize)];
}
