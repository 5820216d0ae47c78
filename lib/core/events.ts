/** Event streams: the async iterator over a uffd's events (generic: the event types live in typed-events.ts). */

/** One `for await` consumer: events are queued until it asks for them. */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  private readonly queued: T[] = [];
  private readonly waiting: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void }> = [];
  private ended = false;
  private failure: Error | null = null;

  constructor(private readonly onReturn: (q: EventQueue<T>) => void) {}

  push(e: T): void {
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

  next(): Promise<IteratorResult<T>> {
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

  return(): Promise<IteratorResult<T>> {
    this.queued.length = 0;
    this.end();
    this.onReturn(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

export const EVENT_TYPES = ['pagefault', 'fork', 'remap', 'remove', 'unmap'] as const;
export function isEventType(name: string | symbol): boolean {
  return (EVENT_TYPES as readonly (string | symbol)[]).includes(name);
}
