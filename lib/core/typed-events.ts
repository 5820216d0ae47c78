/**
 * Typed listeners for Userfaultfd's events (an augmentation, so that the class keeps its plain
 * EventEmitter implementation): `uffd.on('pagefault', (e) => …)` gives `e: PageFault`, and a
 * misspelt event name does not compile (no catch-all string overload).
 */
import type { PageFault, RemapEvent, RemoveEvent, UnmapEvent } from '../base/types';
import type { ForkEvent } from './userfaultfd';

/** Userfaultfd's events and their payloads. */
export interface UserfaultfdEvents {
  pagefault: (e: PageFault) => void;
  fork: (e: ForkEvent) => void;
  remap: (e: RemapEvent) => void;
  remove: (e: RemoveEvent) => void;
  unmap: (e: UnmapEvent) => void;
  error: (err: Error & { code?: string; fault?: PageFault }) => void;
  close: () => void;
  /** EventEmitter's own. */
  newListener: (event: string | symbol, listener: (...args: unknown[]) => void) => void;
  removeListener: (event: string | symbol, listener: (...args: unknown[]) => void) => void;
}

declare module './userfaultfd' {
  interface Userfaultfd {
    on<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    once<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    addListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    prependListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    off<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    removeListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
  }
}
