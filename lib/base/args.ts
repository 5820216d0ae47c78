/** Argument checks shared by both backends: every bad argument fails here, before any syscall. */
import { constants, FeatureName } from './constants';
import { invalidArgType, outOfRange } from './errors';
import type { OpenOptions, Range, ReadSyncOptions } from './types';

const MAX_ADDRESS = (1n << 64n) - 1n;

export function toAddress(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > MAX_ADDRESS) throw outOfRange(name, '>= 0 and < 2 ** 64', value);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, 'a non-negative safe integer', value);
    return BigInt(value);
  }
  throw invalidArgType(name, 'of type bigint or number', value);
}

export function toLength(value: unknown, name: string, allowZero = false): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isSafeInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw outOfRange(name, allowZero ? 'a non-negative safe integer' : 'a positive safe integer', value);
  }
  return value;
}

// The page mask as a bigint, made once: `value % BigInt(pageSize)` allocated a bigint and did a
// division on every ioctl (measured: 34 -> 9 ns per check; docs/performance.md).
let maskFor = 0;
let maskBig = 0n;
export function checkAligned(value: bigint | number, pageSize: number, name: string): void {
  let misaligned: boolean;
  if (typeof value === 'bigint') {
    if (pageSize !== maskFor) {
      maskBig = BigInt(pageSize - 1);
      maskFor = pageSize;
    }
    misaligned = (pageSize & (pageSize - 1)) === 0 ? (value & maskBig) !== 0n : value % BigInt(pageSize) !== 0n;
  } else {
    misaligned = value % pageSize !== 0;
  }
  if (misaligned) throw outOfRange(name, `a multiple of the page size (${pageSize})`, value);
}

export interface CheckedRange { start: bigint; length: number }

/** Whether two ranges share a byte. */
export function rangesOverlap(a: CheckedRange, b: CheckedRange): boolean {
  return a.start < b.start + BigInt(b.length) && b.start < a.start + BigInt(a.length);
}

/** A Range or Region, page aligned, non-empty. */
export function toRange(value: unknown, pageSize: number, name = 'range'): CheckedRange {
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'a Range or a Region', value);
  const r = value as Partial<Range>;
  let start: bigint;
  let length: number;
  try {
    start = toAddress(r.start, `${name}.start`);
    length = toLength(r.length, `${name}.length`);
  } catch (e) {
    if (r.start === undefined && r.length === undefined) throw invalidArgType(name, 'a Range or a Region', value);
    throw e;
  }
  checkAligned(start, pageSize, `${name}.start`);
  checkAligned(length, pageSize, `${name}.length`);
  return { start, length };
}

export function toBytes(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  try {
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
  } catch {
    return new Uint8Array(0); // a detached buffer: V8 refuses a view of it; it holds no bytes
  }
  throw invalidArgType(name, 'a Uint8Array, Buffer or ArrayBuffer', value);
}

export function toOptions<T extends object>(value: unknown, name: string): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'an object', value);
  return value as Partial<T>;
}

export function toFlag(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** [offset, offset + length) inside [0, size). */
export function checkSpan(offset: number, length: number, size: number, what: string): void {
  if (offset + length > size) throw outOfRange(what, `inside the region (length ${size})`, `${offset}+${length}`);
}

/** options.features: known feature names, each once. */
export function toFeatureNames(features: unknown): FeatureName[] {
  if (features === undefined) return [];
  if (!Array.isArray(features)) throw invalidArgType('options.features', 'an array of feature names', features);
  for (const f of features) {
    if (typeof f !== 'string' || !(f in constants.features)) {
      throw invalidArgType('options.features', `feature names (${Object.keys(constants.features).join(', ')})`, f);
    }
  }
  return [...new Set(features as FeatureName[])];
}

/** Userfaultfd.open()'s options, checked before any fd is opened, so that a bad option cannot leak one. */
export function toOpenOptions(options: unknown): Partial<OpenOptions> {
  const o = toOptions<OpenOptions>(options, 'options');
  checkSelfFaultPolicy(o.onSelfFault);
  if (o.userModeOnly !== undefined && typeof o.userModeOnly !== 'boolean') {
    throw invalidArgType('options.userModeOnly', 'of type boolean', o.userModeOnly);
  }
  // The fd is always non-blocking (the reader polls it; readers never block the event loop):
  // the option exists to say so, and asking for a blocking fd is refused, not ignored.
  if (o.nonBlocking !== undefined && o.nonBlocking !== true) throw invalidArgType('options.nonBlocking', 'true or undefined', o.nonBlocking);
  const t = o.faultTimeoutMs;
  if (t !== undefined) {
    if (typeof t !== 'number') throw invalidArgType('options.faultTimeoutMs', 'of type number', t);
    if (!(t > 0) || t > 2 ** 31 - 1) throw outOfRange('options.faultTimeoutMs', '> 0 and <= 2 ** 31 - 1', t);
  }
  return o;
}

/** onSelfFault, checked before a backend opens anything, so that a bad option leaks no fd. */
export function checkSelfFaultPolicy(policy: unknown): void {
  if (policy !== undefined && policy !== 'zeropage' && policy !== 'sigbus' && policy !== 'source') {
    throw invalidArgType('options.onSelfFault', "'zeropage', 'sigbus' or 'source'", policy);
  }
}

/** readSync()'s options: up to `max` events (default 64), waiting up to `timeoutMs` (-1: no limit). */
export function toReadSyncOptions(options: unknown): { max: number; timeoutMs: number } {
  const o = toOptions<ReadSyncOptions>(options, 'options');
  const max = o.max === undefined ? 64 : o.max;
  const timeoutMs = o.timeoutMs === undefined ? -1 : o.timeoutMs;
  if (typeof max !== 'number') throw invalidArgType('options.max', 'of type number', max);
  if (!Number.isInteger(max) || max < 1 || max > 1024) throw outOfRange('options.max', 'an integer from 1 to 1024', max);
  if (typeof timeoutMs !== 'number') throw invalidArgType('options.timeoutMs', 'of type number', timeoutMs);
  if (!Number.isInteger(timeoutMs) || timeoutMs < -1 || timeoutMs > 2 ** 31 - 1) {
    throw outOfRange('options.timeoutMs', '-1 or an integer from 0 to 2 ** 31 - 1', timeoutMs);
  }
  return { max, timeoutMs };
}
