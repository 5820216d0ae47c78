/** Errors: one class for what the kernel refused, Node's own codes for bad arguments. */
import { constants as osConstants } from 'os';
import { constants } from './constants';

export type UffdErrorCode =
  | 'EEXIST' | 'EAGAIN' | 'EINVAL' | 'ENOENT' | 'ESRCH' | 'EBUSY' | 'EPERM' | 'EFAULT' | 'ENOMEM'
  | 'ENOSYS' | 'EBADF' | 'EACCES' | 'ENOTTY' | 'EIO' | 'SIGBUS' | (string & {});

/**
 * A failed system call or ioctl. `syscall` names it ('UFFDIO_COPY', 'userfaultfd', ...);
 * `bytes` is what the kernel did before failing (a partial COPY is `EAGAIN` with `bytes` > 0).
 */
export class UffdError extends Error {
  readonly code: UffdErrorCode;
  readonly errno: number;
  readonly syscall: string;
  readonly bytes: number | undefined;
  /** The feature that was asked for and is not supported, when that is the cause. */
  feature?: string;

  constructor(message: string, code: UffdErrorCode, errno: number, syscall: string, bytes?: number) {
    super(message);
    this.name = 'UffdError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.bytes = bytes;
  }
}

/**
 * Linux errno values, for errors raised in JavaScript (the simulator, policy checks): the
 * addon's table (native/uffd/errors.cc), and two signal codes of memory accesses (128 + the signal).
 */
export const ERRNO: Record<string, number> = { ...constants.errno, SIGBUS: 135, SIGSEGV: 139 };

/** The name of a Linux errno number (this table first, then the platform's own). */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(ERRNO)) if (value === errno) return name;
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === errno) return name;
  return `E${errno}`;
}

const MESSAGES: Record<string, string> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', ESRCH: 'No such process',
  EAGAIN: 'Resource temporarily unavailable', ENOMEM: 'Cannot allocate memory',
  EFAULT: 'Bad address', EBUSY: 'Device or resource busy', EEXIST: 'File exists',
  EINVAL: 'Invalid argument', ENOSYS: 'Function not implemented', EBADF: 'Bad file descriptor',
  SIGBUS: 'Bus error (the page is poisoned)', SIGSEGV: 'Segmentation fault (the page is protected)',
  EISDIR: 'Is a directory', ESPIPE: 'Illegal seek', ENOSPC: 'No space left on device', EFBIG: 'File too large',
};

/** A UffdError made in JavaScript, worded as the native ones are. */
export function uffdError(code: string, syscall: string, bytes?: number, detail?: string): UffdError {
  let message = `${code}: ${syscall} failed: ${MESSAGES[code] ?? code}`;
  if (bytes !== undefined && bytes > 0) message += ` after ${bytes} bytes`;
  if (detail) message += ` (${detail})`;
  return new UffdError(message, code, ERRNO[code] ?? 0, syscall, bytes);
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const e = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

export function outOfRange(name: string, expected: string, actual: unknown): RangeError {
  const e = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${describe(actual)}`);
  (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return e;
}

/** An error of this package's own (not an errno), with a stable `code` (ERR_UFFD_...). */
export function codedError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/**
 * The error for any use of a closed userfaultfd (ERR_UFFD_CLOSED) or an unmapped region
 * (ERR_UFFD_UNMAPPED): an Error of its own, not a RangeError, since nothing about the arguments
 * is wrong. The same on both backends (the facade decides it before any backend is called).
 */
export function closedError(what: 'userfaultfd' | 'region'): Error & { code: string } {
  return what === 'userfaultfd'
    ? codedError('ERR_UFFD_CLOSED', 'The userfaultfd is closed')
    : codedError('ERR_UFFD_UNMAPPED', 'The region is unmapped');
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `type bigint (${v}n)`;
  if (typeof v === 'number') return `type number (${v})`;
  if (typeof v === 'string') return `type string (${JSON.stringify(v.length > 28 ? v.slice(0, 25) + '...' : v)})`;
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return 'function';
  if (isRange(v)) return `a range (0x${BigInt(v.start).toString(16)}, ${v.length} bytes)`;
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'Object'}`;
  return `type ${typeof v}`;
}

/** A plain { start, length } object with an integer start (a Region describes itself by its class). */
function isRange(v: unknown): v is { start: bigint | number; length: number } {
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return false;
  const { start, length } = v as { start?: unknown; length?: unknown };
  return (typeof start === 'bigint' || Number.isSafeInteger(start)) && typeof length === 'number';
}
