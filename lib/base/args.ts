/** Argument checks shared by both backends: every bad argument fails here, before any syscall. */
import { constants, FeatureName } from './constants';
import { invalidArgType, outOfRange } from './errors';
import type { FillOptions, OpenOptions, Range, ReadSyncOptions } from './types';

export function toAddress(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    // One truncation and a compare: the two bigint comparisons (< 0n, > 2 ** 64 - 1) cost twice
    // as much, and asUintN hands back the same bigint when it fits (no allocation in any tier).
    if (BigInt.asUintN(64, value) !== value) throw outOfRange(name, '>= 0 and < 2 ** 64', value);
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

// A bigint's low 32 bits, read without bigint arithmetic: `value & mask` makes a new bigint (16
// bytes of V8 heap) on every call until TurboFan has compiled the caller, which on copy()'s path
// took thousands of calls (bench/run.js group 7, V8 heap bytes per copy()). A store into a
// BigUint64Array and two 16-bit reads (always small integers) allocate in no tier, and are as
// fast once optimized (1.9 against 3.9 ns a check). Low half first on little-endian hosts.
const word = new BigUint64Array(1);
const halves = new Uint16Array(word.buffer);
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 3;
const NEXT = LOW === 0 ? 1 : 2;

export function checkAligned(value: bigint | number, pageSize: number, name: string): void {
  let misaligned: boolean;
  const mask = pageSize - 1;
  if (typeof value !== 'bigint') {
    misaligned = value % pageSize !== 0;
  } else if ((pageSize & mask) === 0 && pageSize <= 2 ** 32) {
    word[0] = value; // modulo 2 ** 64, two's complement: the low bits are the bigint's own
    misaligned = (halves[LOW] & mask) !== 0 || (halves[NEXT] & (mask >>> 16)) !== 0;
  } else {
    misaligned = value % BigInt(pageSize) !== 0n;
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
  // The default names are constants: a template string here cost every wake() a concatenation.
  const startName = name === 'range' ? 'range.start' : `${name}.start`;
  const lengthName = name === 'range' ? 'range.length' : `${name}.length`;
  // Each field read once (a getter runs once), and no try/catch on wake()'s path: an object with
  // neither field is not a Range at all.
  const givenStart = r.start;
  const givenLength = r.length;
  if (givenStart === undefined && givenLength === undefined) throw invalidArgType(name, 'a Range or a Region', value);
  const start = toAddress(givenStart, startName);
  const length = toLength(givenLength, lengthName);
  checkAligned(start, pageSize, startName);
  checkAligned(length, pageSize, lengthName);
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

/**
 * The options of a call made without them: one frozen object, not a new `{}` per call (56 bytes of
 * V8 heap on every copy(), the README's per-fault call; bench/results.md group 7).
 */
const NO_OPTIONS: Readonly<Record<string, never>> = Object.freeze({});

export function toOptions<T extends object>(value: unknown, name: string): Partial<T> {
  if (value === undefined) return NO_OPTIONS as Partial<T>;
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'an object', value);
  return value as Partial<T>;
}

export function toFlag(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** options.errorOnExist (default true) as "EEXIST is success": ExistOptions in base/types.ts. */
export function toExistOk(o: { errorOnExist?: unknown }): boolean {
  return o.errorOnExist === undefined ? false : !toFlag(o.errorOnExist, 'options.errorOnExist');
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
  if (o.orderedAnswers !== undefined && typeof o.orderedAnswers !== 'boolean') {
    throw invalidArgType('options.orderedAnswers', 'of type boolean', o.orderedAnswers);
  }
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

/** fill()'s chunks by default, as CRIU's lazy-pages daemon: 64 KiB, growing to 4 MiB (criu/uffd.c). */
const FILL_MIN_CHUNK = 64 * 1024;
const FILL_MAX_CHUNK = 4 * 1024 * 1024;

/** uffd.fill()'s options: chunk sizes, page multiples, the maximum not below the minimum. */
export function toFillOptions(options: unknown, pageSize: number): { minChunk: number; maxChunk: number } {
  const o = toOptions<FillOptions>(options, 'options');
  const minChunk = o.minChunk === undefined ? FILL_MIN_CHUNK : toLength(o.minChunk, 'options.minChunk');
  const maxChunk = o.maxChunk === undefined ? Math.max(FILL_MAX_CHUNK, minChunk) : toLength(o.maxChunk, 'options.maxChunk');
  checkAligned(minChunk, pageSize, 'options.minChunk');
  checkAligned(maxChunk, pageSize, 'options.maxChunk');
  if (maxChunk < minChunk) throw outOfRange('options.maxChunk', `at least options.minChunk (${minChunk})`, maxChunk);
  return { minChunk, maxChunk };
}
