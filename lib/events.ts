/** Event streams: the async iterator over a uffd's events. */
import type { UffdEvent } from './types';

/** One `for await` consumer: events are queued until it asks for them. */
export class EventQueue implements AsyncIterableIterator<UffdEvent> {
  private readonly queued: UffdEvent[] = [];
  private readonly waiting: Array<{ resolve: (r: IteratorResult<UffdEvent>) => void; reject: (e: Error) => void }> = [];
  private ended = false;
  private failure: Error | null = null;

  constructor(private readonly onReturn: (q: EventQueue) => void) {}

  push(e: UffdEvent): void {
    if (this.ended) return;
    const w = this.waiting.shift();
    if (w) w.resolve({ value: e, done: false });
    else this.queued.push(e);
  }

  /** No more events: after the queued ones, the iteration ends (or throws `error`). */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error ?? null;
    for (const w of this.waiting.splice(0)) {
      if (this.failure) w.reject(this.failure);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<UffdEvent>> {
    const e = this.queued.shift();
    if (e) return Promise.resolve({ value: e, done: false });
    if (this.ended) {
      if (this.failure) {
        const f = this.failure;
        this.failure = null;
        return Promise.reject(f);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<UffdEvent>> {
    this.queued.length = 0;
    this.end();
    this.onReturn(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<UffdEvent> {
    return this;
  }
}

export const EVENT_TYPES = ['pagefault', 'fork', 'remap', 'remove', 'unmap'] as const;
export function isEventType(name: string | symbol): boolean {
  return (EVENT_TYPES as readonly (string | symbol)[]).includes(name);
}
