/**
 * Dirty tracking: which pages of a WP_ASYNC write-protected range were written since the last
 * reset. The kernel keeps the written bit itself (UFFD_FEATURE_WP_ASYNC resolves the write
 * faults without a message); PAGEMAP_SCAN reads it, and with `reset` re-protects in the same walk.
 */
import type { CheckedRange } from '../base/args';
import { toFlag, toOptions } from '../base/args';
import { checkOptionKeys, keysOf } from '../base/option-keys';
import { constants } from '../base/constants';
import { codedError, uffdError } from '../base/errors';

/** A run of written pages. */
export interface DirtyRun {
  start: bigint;
  length: number;
}

export interface DirtyPagesOptions {
  /** Re-protect the runs found, so that the next call sees only later writes. Default false. */
  reset?: boolean;
}

const DIRTY_OPTION_KEYS = keysOf<DirtyPagesOptions>({ reset: true });

/** The options of dirtyPages(), checked before anything is scanned. */
export function toDirtyOptions(options: unknown): { reset: boolean } {
  checkOptionKeys(options, DIRTY_OPTION_KEYS, 'dirtyPages()');
  const o = toOptions<DirtyPagesOptions>(options, 'options');
  return { reset: toFlag(o.reset, 'options.reset') };
}

/**
 * The preconditions both backends share, so that both refuse the same misuse the same way:
 * WP_ASYNC negotiated, and the whole range registered for WP by this uffd (the kernel would
 * say EPERM for a page outside a WP_ASYNC range; ENOENT names the cause as WRITEPROTECT does).
 */
export function checkDirtyTracking(features: ReadonlyArray<string | number>, r: CheckedRange,
                                   registeredMode: number | undefined): void {
  if (!features.includes('WP_ASYNC')) {
    throw uffdError('EINVAL', 'PAGEMAP_SCAN', undefined,
      "dirtyPages() needs a uffd opened with features ['WP_ASYNC', 'WP_UNPOPULATED']");
  }
  if (registeredMode === undefined || (registeredMode & constants.modes.REGISTER_WP) === 0) {
    throw uffdError('ENOENT', 'PAGEMAP_SCAN', undefined,
      `0x${r.start.toString(16)} (${r.length} bytes) is not registered with { wp: true } on this uffd`);
  }
}

/**
 * The error for dirtyPages() on a uffd whose memory is not this process's: /proc/self/pagemap
 * describes only our own address space.
 */
export function foreignMemoryError(): Error {
  return codedError('ERR_UFFD_FOREIGN_MEMORY', 'dirtyPages() reads /proc/self/pagemap, which describes this ' +
    'process\'s memory only; this uffd was received from elsewhere (fromFd or a fork event), so call dirtyPages() ' +
    'in the process that owns the memory');
}
