/**
 * Tracking: dirty pages and live snapshots over write protection (sources/dirty.ts and
 * sources/snapshot.ts hold their checks and formats). dirtyPages() reads what WP_ASYNC
 * recorded; snapshot() registers the range for WP if it must, streams a point-in-time image
 * while other threads write, and leaves the registration as it found it. Userfaultfd's
 * collaborator (core/userfaultfd.ts); JS thread only.
 */
import { checkAligned, CheckedRange } from '../base/args';
import { constants, FeatureName } from '../base/constants';
import { invalidArgType } from '../base/errors';
import type { RegisterOptions } from '../base/types';
import { checkDirtyTracking, DirtyRun, toDirtyOptions } from '../sources/dirty';
import { busyError, openDestination, RawSnapshotResult, SnapshotResult, toResult, wpAsyncError } from '../sources/snapshot';
import type { Registrations } from './registrations';

const M = constants.modes;

/** What tracking needs of its uffd: its registrations, and the backend's scan and snapshot. */
export interface TrackingHost {
  /** The uffd itself. */
  readonly uffd: { readonly features: ReadonlyArray<FeatureName | number>; readonly closed: boolean };
  readonly registrations: Registrations;
  /** Throws ERR_UFFD_CLOSED once the uffd is closed. */
  checkOpen(): void;
  register(r: CheckedRange, options: RegisterOptions): void;
  unregister(r: CheckedRange): void;
  /** The reader thread saves pages before their writes. */
  startReader(): void;
  /** The written runs of [start, start + length), adjacent runs merged; `reset` re-protects them. */
  dirtyPages(start: bigint, length: number, reset: boolean): DirtyRun[];
  /** Protects, streams and releases the range; the range is registered for WP already. */
  snapshot(start: bigint, length: number, pageSize: number, fd: number, populate: boolean): Promise<RawSnapshotResult>;
}

export class Tracking {
  private readonly snapshotting = new Set<CheckedRange>();

  constructor(private readonly host: TrackingHost) {}

  /** Userfaultfd.dirtyPages() past its range check. */
  dirtyPages(r: CheckedRange, options: unknown): DirtyRun[] {
    const { reset } = toDirtyOptions(options);
    this.host.checkOpen(); // after the options: a getter of theirs may have closed it
    checkDirtyTracking(this.host.uffd.features, r, this.host.registrations.modeOf(r));
    return this.host.dirtyPages(r.start, r.length, reset);
  }

  /** Userfaultfd.snapshot() past its range check; `pageSize` is the range's (a hugetlb Region's). */
  async snapshot(r: CheckedRange, pageSize: number, dest: unknown): Promise<SnapshotResult> {
    checkAligned(r.start, pageSize, 'range.start');
    checkAligned(r.length, pageSize, 'range.length');
    if (typeof dest !== 'string' && typeof dest !== 'number') throw invalidArgType('dest', 'a file path (string) or an fd (number)', dest);
    if (this.host.uffd.features.includes('WP_ASYNC')) throw wpAsyncError();
    const end = r.start + BigInt(r.length);
    for (const x of this.snapshotting) if (r.start < x.start + BigInt(x.length) && end > x.start) throw busyError(r.start);
    this.snapshotting.add(r);
    let restore: (() => void) | null = null;
    let out: { fd: number; close: () => Promise<void> } | null = null;
    try {
      out = await openDestination(dest);
      this.host.checkOpen();
      restore = this.registerForSnapshot(r);
      this.host.startReader();
      const populate = !this.host.uffd.features.includes('WP_UNPOPULATED');
      return toResult(await this.host.snapshot(r.start, r.length, pageSize, out.fd, populate));
    } finally {
      this.snapshotting.delete(r);
      if (restore && !this.host.uffd.closed) restore();
      await out?.close();
    }
  }

  /** Registers `r` for WP unless it is; returns how to put the registration back. */
  private registerForSnapshot(r: CheckedRange): () => void {
    const { host } = this;
    const mode = host.registrations.modeOf(r);
    if (mode === undefined) {
      host.register(r, { wp: true });
      return () => host.unregister(r);
    }
    if (mode & M.REGISTER_WP) return () => undefined;
    // Modes can be added to a registration but never dropped: the way back is unregister.
    const flags = (m: number) => ({ missing: (m & M.REGISTER_MISSING) !== 0, minor: (m & M.REGISTER_MINOR) !== 0 });
    host.unregister(r);
    host.register(r, { ...flags(mode), wp: true });
    return () => {
      host.unregister(r);
      host.register(r, flags(mode));
    };
  }
}
