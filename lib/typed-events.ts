/**
 * Typed listeners for Userfaultfd's events (an augmentation, so that the class keeps its plain
 * EventEmitter implementation): `uffd.on('pagefault', (e) => …)` gives `e: PageFault`.
 */
import type { ForkEvent, PageFault, RemapEvent, RemoveEvent, UnmapEvent } from './types';

/** Userfaultfd's events and their payloads. */
export interface UserfaultfdEvents {
  pagefault: (e: PageFault) => void;
  fork: (e: ForkEvent) => void;
  remap: (e: RemapEvent) => void;
  remove: (e: RemoveEvent) => void;
  unmap: (e: UnmapEvent) => void;
  error: (err: Error & { code?: string; fault?: PageFault }) => void;
  close: () => void;
}

declare module './userfaultfd' {
  interface Userfaultfd {
    on<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
    addListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    addListener(event: string | symbol, listener: (...args: any[]) => void): this;
    prependListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
    off<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    off(event: string | symbol, listener: (...args: any[]) => void): this;
    removeListener<K extends keyof UserfaultfdEvents>(event: K, listener: UserfaultfdEvents[K]): this;
    removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
  }
}
