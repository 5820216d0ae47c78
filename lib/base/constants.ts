/**
 * The userfaultfd ABI table. On Linux it comes from the addon (built from
 * <linux/userfaultfd.h>); elsewhere from the same values written here, for the simulator.
 * test/simulator/backend-choice.test.js checks that the two agree.
 */
import { binding, NativeConstants } from './native';

export const FALLBACK_CONSTANTS: NativeConstants = {
  features: {
    PAGEFAULT_FLAG_WP: 1 << 0, EVENT_FORK: 1 << 1, EVENT_REMAP: 1 << 2, EVENT_REMOVE: 1 << 3,
    MISSING_HUGETLBFS: 1 << 4, MISSING_SHMEM: 1 << 5, EVENT_UNMAP: 1 << 6, SIGBUS: 1 << 7,
    THREAD_ID: 1 << 8, MINOR_HUGETLBFS: 1 << 9, MINOR_SHMEM: 1 << 10, EXACT_ADDRESS: 1 << 11,
    WP_HUGETLBFS_SHMEM: 1 << 12, WP_UNPOPULATED: 1 << 13, POISON: 1 << 14, WP_ASYNC: 1 << 15,
    MOVE: 1 << 16,
  },
  ioctls: {
    register: 0x00, unregister: 0x01, wake: 0x02, copy: 0x03, zeropage: 0x04, move: 0x05,
    writeProtect: 0x06, continue: 0x07, poison: 0x08, api: 0x3f,
  },
  modes: {
    REGISTER_MISSING: 1, REGISTER_WP: 2, REGISTER_MINOR: 4,
    COPY_DONTWAKE: 1, COPY_WP: 2, ZEROPAGE_DONTWAKE: 1,
    WRITEPROTECT_WP: 1, WRITEPROTECT_DONTWAKE: 2, CONTINUE_DONTWAKE: 1, CONTINUE_WP: 2,
    POISON_DONTWAKE: 1, MOVE_DONTWAKE: 1, MOVE_ALLOW_SRC_HOLES: 2,
  },
  events: { PAGEFAULT: 0x12, FORK: 0x13, REMAP: 0x14, REMOVE: 0x15, UNMAP: 0x16 },
  pagefaultFlags: { WRITE: 1, WP: 2, MINOR: 4 },
  delivery: { size: 40, msg: 0, note: 32, err: 36 },
  notes: { kernel: 0, selfFault: 1, sourceFailed: 2, readerFailed: 3, sourceFailedAnswered: 4, selfFaultFallback: 5, yielded: 6 },
  sourceKinds: { zero: 0, buffer: 1, fd: 2, path: 3 },
  selfFaultPolicies: { zeropage: 1, sigbus: 2, source: 3 },
  errno: {
    EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13,
    EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EMFILE: 24,
    ENFILE: 23, ENOTTY: 25, EFBIG: 27, ENOSPC: 28, ENOSYS: 38, EOPNOTSUPP: 95, ECONNREFUSED: 111,
    ECONNRESET: 104, EPIPE: 32, ENOTSOCK: 88, EADDRINUSE: 98, ENAMETOOLONG: 36, EMSGSIZE: 90,
    EPROTO: 71, ETIMEDOUT: 110, ESPIPE: 29, ECANCELED: 125,
  },
  API: 0xaa,
  USER_MODE_ONLY: 1,
  pageSize: 4096,
};

export const constants: NativeConstants = binding ? binding.constants : FALLBACK_CONSTANTS;
export const PAGE_SIZE: number = constants.pageSize;
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;

export const FEATURE_NAMES = [
  'PAGEFAULT_FLAG_WP', 'EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE', 'MISSING_HUGETLBFS',
  'MISSING_SHMEM', 'EVENT_UNMAP', 'SIGBUS', 'THREAD_ID', 'MINOR_HUGETLBFS', 'MINOR_SHMEM',
  'EXACT_ADDRESS', 'WP_HUGETLBFS_SHMEM', 'WP_UNPOPULATED', 'POISON', 'WP_ASYNC', 'MOVE',
] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

export const IOCTL_NAMES = [
  'register', 'unregister', 'api', 'wake', 'copy', 'zeropage', 'move', 'writeProtect',
  'continue', 'poison',
] as const;
export type IoctlName = (typeof IOCTL_NAMES)[number];

/** Feature names for a kernel mask; bits this table does not name are kept as numbers. */
export function featureNames(mask: number): Array<FeatureName | number> {
  const out: Array<FeatureName | number> = [];
  for (let bit = 0; bit < 53; bit++) {
    const value = 2 ** bit;
    if (Math.floor(mask / value) % 2 === 0) continue;
    const name = FEATURE_NAMES.find((n) => constants.features[n] === value);
    out.push(name ?? value);
  }
  return out;
}

export function featureMask(names: ReadonlyArray<FeatureName | number>): number {
  let mask = 0;
  for (const n of names) mask += typeof n === 'number' ? n : constants.features[n];
  return mask;
}

/** Ioctl names for a kernel mask (bit n = ioctl number n); unknown bits kept as numbers. */
export function ioctlNames(mask: bigint): Array<IoctlName | number> {
  const out: Array<IoctlName | number> = [];
  for (let bit = 0; bit < 64; bit++) {
    if (((mask >> BigInt(bit)) & 1n) === 0n) continue;
    const name = IOCTL_NAMES.find((n) => constants.ioctls[n] === bit);
    out.push(name ?? bit);
  }
  return out;
}

export function ioctlMask(names: ReadonlyArray<IoctlName>): bigint {
  let mask = 0n;
  for (const n of names) mask |= 1n << BigInt(constants.ioctls[n]);
  return mask;
}
