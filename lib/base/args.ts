/** Argument checks shared by both backends: every bad argument fails here, before any syscall. */
import { constants, FeatureName } from './constants';
import { invalidArgType, outOfRange } from './errors';
import type { Range } from './types';

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
