/**
 * Delivery: where a page fault goes that no native source answered. A custom source's range
 * claims it; else the 'pagefault' listeners and events() iterators get it; with none of them
 * (or a listener that throws, or no answer within faultTimeoutMs) the fallback answers it, a
 * zero page, an un-protect or a continue, so that its thread runs again, and the reason is
 * reported as an 'error'. The fault reports (unhandled, source failure, timeout, self-fault)
 * are built here, in one place. Userfaultfd's collaborator (core/userfaultfd.ts); JS thread only.
 */
import { HUGE_PAGE_SIZE } from '../base/constants';
import { codedError, errnoName, UffdError, uffdError } from '../base/errors';
import type { PageFault } from '../base/types';

/** What delivery needs of its uffd: its consumers, and the answering ioctls (arguments checked). */
export interface DeliveryHost {
  /** The uffd itself. */
  readonly uffd: { readonly pageSize: number; readonly closed: boolean };
  /** Whether a 'pagefault' listener or an events() iterator is there. */
  hasPagefaultConsumers(): boolean;
  /** Hands the fault to the iterators and the 'pagefault' listeners (a listener may throw). */
  publish(e: PageFault): void;
  /** Emits 'error' (thrown when nobody listens, as EventEmitter does). */
  emitError(err: Error): void;
  /** A custom source's claim (core/serving.ts): true when it answers the fault itself. */
  claim(e: PageFault): boolean;
  writeProtect(start: bigint, length: number, mode: number): void;
  continue(start: bigint, length: number, mode: number): number;
  zeropage(start: bigint, length: number, mode: number): number;
  copy(dst: bigint, src: Uint8Array, mode: number): number;
  wake(start: bigint, length: number): void;
}

export class Delivery {
  /** Faults delivered to JS and not yet answered, by page: the faultTimeoutMs watch. */
  private readonly unanswered = new Map<bigint, { fault: PageFault; timer: NodeJS.Timeout }>();

  constructor(private readonly host: DeliveryHost, private readonly faultTimeoutMs: number | undefined) {}

  /** Whether any delivered fault waits for its answer (the answering ioctls then clear it). */
  get watching(): boolean {
    return this.unanswered.size > 0;
  }

  /**
   * A page fault a backend read (not answered natively). `sourceFailure` is the errno name when
   * a served range's source could not answer it. With no 'pagefault' consumer the fallback
   * answers it; either way it is answered before any error is reported, since an 'error'
   * nobody listens to throws.
   */
  deliverFault(e: PageFault, sourceFailure?: string): void {
    if (sourceFailure === undefined && this.host.claim(e)) return;
    if (!this.host.hasPagefaultConsumers()) {
      this.answerByFallback(e);
      if (sourceFailure) this.report(sourceError(sourceFailure), e);
      this.report(unhandledError(e), e);
      return;
    }
    this.dispatch(e);
    if (sourceFailure) this.report(sourceError(sourceFailure), e);
  }

  /** A fault a stopped custom source gave back: to the handlers, or the fallback (no report). */
  giveBack(e: PageFault): void {
    if (this.host.hasPagefaultConsumers()) this.dispatch(e);
    else this.answerByFallback(e);
  }

  /** Delivers one fault to the listeners and iterators. */
  dispatch(e: PageFault): void {
    this.watch(e);
    try {
      this.host.publish(e);
    } catch (err) {
      // A handler that throws must not leave the faulting thread waiting forever.
      this.answerByFallback(e);
      this.answered(pageOf(e.address, this.host.uffd.pageSize), this.host.uffd.pageSize);
      this.report(err as Error, e);
    }
  }

  /**
   * Runs one delivery of a batch. A listener that throws (or an 'error' nobody listens to) must
   * not cost the rest of the batch its delivery: other threads wait on those faults. The error
   * is rethrown on the next tick, as an uncaught exception (thrown into a native callback, Node
   * would only print a warning, DEP0168, and drop it).
   */
  isolated(deliver: () => void): void {
    try {
      deliver();
    } catch (error) {
      this.rethrowLater(error);
    }
  }

  /** What isolated() does with a delivery's error: thrown again on the next tick. */
  rethrowLater(error: unknown): void {
    process.nextTick(() => { throw error; });
  }

  /** faultTimeoutMs: answer the fault by the fallback if nothing answers its page in time. */
  watch(e: PageFault): void {
    if (this.faultTimeoutMs === undefined) return;
    const { pageSize } = this.host.uffd;
    const page = pageOf(e.address, pageSize);
    if (this.unanswered.has(page)) return; // one answer wakes every thread waiting on the page
    const timer = setTimeout(() => {
      this.unanswered.delete(page);
      if (this.host.uffd.closed) return;
      let failure: Error | undefined;
      try {
        this.answerByFallback(e);
      } catch (err) {
        failure = err as Error;
      }
      this.report(timeoutError(e, page, this.faultTimeoutMs!, failure), e);
    }, this.faultTimeoutMs);
    timer.unref();
    this.unanswered.set(page, { fault: e, timer });
  }

  /** Runs an answering ioctl; the pages it did (all, or `bytes` of a partial failure) are answered. */
  answering(start: bigint, length: number, wakes: boolean, op: () => number): number {
    if (this.unanswered.size === 0 || !wakes) return op();
    try {
      const done = op();
      this.answered(start, length);
      return done;
    } catch (err) {
      const bytes = (err as UffdError).bytes;
      // EEXIST wakes nobody: the fault stays watched until a wake (or the timeout) answers it.
      if (typeof bytes === 'number' && bytes > 0) this.answered(start, bytes);
      throw err;
    }
  }

  /** The faults in [start, start + length) were answered: stop their timers. */
  answered(start: bigint, length: number): void {
    if (this.unanswered.size === 0) return;
    const end = start + BigInt(length);
    if (length / this.host.uffd.pageSize <= this.unanswered.size) {
      for (let p = start; p < end; p += BigInt(this.host.uffd.pageSize)) this.clearWatch(p);
    } else {
      for (const p of [...this.unanswered.keys()]) if (p >= start && p < end) this.clearWatch(p);
    }
  }

  private clearWatch(page: bigint): void {
    const w = this.unanswered.get(page);
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.unanswered.delete(page);
  }

  /** An 'error' event, with the fault it is about; with no 'error' listener it is thrown. */
  report(err: Error, fault?: PageFault): void {
    if (fault) (err as Error & { fault?: PageFault }).fault = fault;
    this.host.emitError(err);
  }

  /** Answers a fault so that its thread runs again: zero page, un-protect, or continue. */
  answerByFallback(e: PageFault): void {
    if (this.host.uffd.closed) return;
    const { pageSize } = this.host.uffd;
    const page = e.address - (e.address % BigInt(pageSize));
    try {
      if (e.wp) this.host.writeProtect(page, pageSize, 0);
      else if (e.minor) this.host.continue(page, pageSize, 0);
      else this.zeroFill(e.address);
    } catch (err) {
      if ((err as UffdError).code === 'EEXIST') this.host.wake(page, pageSize);
      else if ((err as UffdError).code !== 'ENOENT') throw err;
    }
  }

  /** A zero page at `address`; hugetlb has no UFFDIO_ZEROPAGE, so a huge page of zeros is copied. */
  private zeroFill(address: bigint): void {
    const page = address - (address % BigInt(this.host.uffd.pageSize));
    try {
      this.host.zeropage(page, this.host.uffd.pageSize, 0);
    } catch (err) {
      if ((err as UffdError).code !== 'EINVAL') throw err;
      const huge = BigInt(HUGE_PAGE_SIZE);
      this.host.copy(address - (address % huge), new Uint8Array(HUGE_PAGE_SIZE), 0);
    }
  }

  /** close(): no fault is watched any more. */
  close(): void {
    for (const w of this.unanswered.values()) clearTimeout(w.timer);
    this.unanswered.clear();
  }
}

/** The JS thread faulted on memory its own uffd answers; the reader answered by onSelfFault. */
export function selfFaultError(e: PageFault, policy: string, err: number, fellBack: boolean): Error {
  const how = fellBack
    ? `onSelfFault '${policy}' could not poison the page (UFFDIO_POISON: ${errnoName(err)}), so a zero page answered it`
    : err === 0 ? `answered by onSelfFault '${policy}'` : `onSelfFault '${policy}' failed with ${errnoName(err)}`;
  const error = new Error(`The JavaScript thread that handles this userfaultfd faulted on ${e.address.toString(16)}: ` +
    `its own handler could never answer it; ${how}. Touch served memory with region.read/write, a Worker, or serve().`);
  Object.assign(error, { code: 'ERR_UFFD_SELF_FAULT', fault: e });
  return error;
}

function sourceError(code: string): Error {
  return uffdError(code, 'UFFDIO_COPY', 0, 'a page source could not answer a fault; the JS handlers were given it');
}

function unhandledError(e: PageFault): Error {
  return codedError('ERR_UFFD_UNHANDLED_FAULT',
    `A page fault at 0x${e.address.toString(16)} had no 'pagefault' listener; answered with a zero page`);
}

function timeoutError(e: PageFault, page: bigint, ms: number, failure: Error | undefined): Error {
  const error = new Error(`No answer to the page fault at 0x${page.toString(16)} within faultTimeoutMs ` +
    `(${ms} ms); ` + (failure ? `the fallback answer failed: ${failure.message}` :
      `answered by the fallback (${e.wp ? 'un-protect' : e.minor ? 'continue' : 'zero page'})`));
  return Object.assign(error, { code: 'ERR_UFFD_FAULT_TIMEOUT', cause: failure });
}

function pageOf(address: bigint, pageSize: number): bigint {
  return address - (address % BigInt(pageSize));
}
