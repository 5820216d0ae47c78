/**
 * Working sets: the pages a program touched first in one run, in order, saved to a small file
 * and prefetched on the next run. The file format lives here only (docs/working-sets.md); both
 * backends pass parsed runs in and take recorded runs out as flat Uint32Arrays.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import { codedError, invalidArgType, outOfRange, uffdError } from '../base/errors';
import { readRegularFile, writeFileAtomic } from '../base/files';
import { sparseSize } from './page-source';
import type { PageSource } from './page-source';
import type { WorkingSetOptions } from '../base/types';
import { checkOptionKeys, OPTION_KEYS } from '../base/option-keys';

export const WORKING_SET_VERSION = 1;
const MAGIC = 0x53574655; // 'UFWS', little-endian
const HEADER = 40;
const RUN = 12;
const TRAILER = 4; // checksum() of everything before it
const WRITE = 1; // run flag: the first touch was a write fault
const MAX_AGE = 255;
/**
 * The largest file readWorkingSet() reads without a shape to bound it (with one: the most runs a
 * set of that range can hold, one per page). 1 GiB is about 89 million runs.
 */
export const MAX_WORKING_SET_BYTES = 1 << 30;

/** One run of a working set: pages [first, first + count) of the range, touched in this order. */
export interface WorkingSetRun {
  first: number;
  count: number;
  write: boolean;
  /** Runs in a row in which these pages were known to be untouched (0: touched in the last). */
  age: number;
}

/** A working-set file, parsed. */
export interface WorkingSetFile {
  version: number;
  pageSize: number;
  /** Bytes of the source it was recorded against (0 for PageSource.zero()). */
  sourceSize: number;
  /** Bytes of the served range it was recorded on. */
  rangeLength: number;
  /** How many runs (recordings) it merges. */
  generation: number;
  runs: WorkingSetRun[];
  /** The file's trailing checksum (a compact page file names the set it belongs to by it). */
  checksum?: number;
}

/** What a set must have been recorded for to be prefetched here. */
export interface WorkingSetShape {
  pageSize: number;
  sourceSize: number;
  rangeLength: number;
}

export type WorkingSetErrorCode =
  | 'ERR_UFFD_WORKING_SET_CORRUPT' | 'ERR_UFFD_WORKING_SET_VERSION' | 'ERR_UFFD_WORKING_SET_MISMATCH'
  | 'ERR_UFFD_WORKING_SET_STALE' | 'ERR_UFFD_NOT_RECORDING';

export function workingSetError(code: WorkingSetErrorCode, message: string, path?: string): Error {
  const e = new Error(path === undefined ? message : `${message}: ${path}`);
  Object.assign(e, { code }, path === undefined ? {} : { path });
  return e;
}

export interface CheckedRefine { maxPages: number; maxAge: number; pages: boolean }

export function toRefineOptions(value: unknown, pageSize: number): CheckedRefine {
  if (value === undefined) return { maxPages: Infinity, maxAge: 4, pages: false };
  if (value === null || typeof value !== 'object') throw invalidArgType('options.workingSet', 'an object', value);
  checkOptionKeys(value, OPTION_KEYS.workingSet, 'serve()', 'options.workingSet');
  const o = value as WorkingSetOptions;
  if (o.pages !== undefined && typeof o.pages !== 'boolean') throw invalidArgType('options.workingSet.pages', 'of type boolean', o.pages);
  let maxPages = Infinity;
  if (o.maxMiB !== undefined) {
    if (typeof o.maxMiB !== 'number') throw invalidArgType('options.workingSet.maxMiB', 'of type number', o.maxMiB);
    if (!(o.maxMiB > 0) || !Number.isFinite(o.maxMiB)) throw outOfRange('options.workingSet.maxMiB', '> 0', o.maxMiB);
    maxPages = Math.max(1, Math.floor((o.maxMiB * 1024 * 1024) / pageSize));
  }
  let maxAge = 4;
  if (o.maxAge !== undefined) {
    if (typeof o.maxAge !== 'number') throw invalidArgType('options.workingSet.maxAge', 'of type number', o.maxAge);
    if (!Number.isInteger(o.maxAge) || o.maxAge < 1 || o.maxAge > MAX_AGE) {
      throw outOfRange('options.workingSet.maxAge', `an integer from 1 to ${MAX_AGE}`, o.maxAge);
    }
    maxAge = o.maxAge;
  }
  return { maxPages, maxAge, pages: o.pages ?? false };
}

export function toSetPath(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw invalidArgType(name, 'a non-empty string path', value);
  }
  return value;
}

// ---- the file ---------------------------------------------------------------------------------

/**
 * The file's checksum: the first 4 bytes of SHA-256 (big-endian) over every byte before it.
 * Native (node:crypto), so a large set is checked in well under a millisecond at serve().
 */
export function checksum(bytes: Uint8Array): number {
  return crypto.createHash('sha256').update(bytes).digest().readUInt32BE(0);
}

export function encodeWorkingSet(f: Omit<WorkingSetFile, 'version'>): Buffer {
  const b = Buffer.alloc(HEADER + f.runs.length * RUN + TRAILER);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt16LE(WORKING_SET_VERSION, 4);
  b.writeUInt16LE(HEADER, 6);
  b.writeUInt32LE(f.pageSize, 8);
  b.writeUInt32LE(f.runs.length, 12);
  b.writeBigUInt64LE(BigInt(f.sourceSize), 16);
  b.writeBigUInt64LE(BigInt(f.rangeLength), 24);
  b.writeUInt32LE(Math.min(f.generation, 0xffffffff), 32);
  let o = HEADER;
  for (const r of f.runs) {
    b.writeUInt32LE(r.first, o);
    b.writeUInt32LE(r.count, o + 4);
    b.writeUInt8(r.write ? WRITE : 0, o + 8);
    b.writeUInt8(Math.min(r.age, MAX_AGE), o + 9);
    o += RUN;
  }
  b.writeUInt32LE(checksum(b.subarray(0, o)), o);
  return b;
}

/**
 * A working-set file checked and parsed without an object per run: what serve() needs before
 * the program's first byte (a set of scattered single pages has one run per page).
 */
export interface LoadedSet extends Omit<WorkingSetFile, 'runs' | 'checksum'> {
  checksum: number;
  /** The runs as [first, count, flags] words: flags bit 0 write, bits 8-15 age. */
  words: Uint32Array;
}

/** A loaded set's runs as objects (refining, tools). */
export function runsOf(set: LoadedSet): WorkingSetRun[] {
  const w = set.words;
  const runs: WorkingSetRun[] = new Array(w.length / 3);
  for (let i = 0; i < runs.length; i++) {
    runs[i] = { first: w[i * 3], count: w[i * 3 + 1], write: (w[i * 3 + 2] & WRITE) !== 0, age: (w[i * 3 + 2] >>> 8) & 0xff };
  }
  return runs;
}

/**
 * Parses and checks a working-set file. Anything short of a whole, intact file of this version
 * is a coded error, never a set with wrong pages in it; with `shape`, a set recorded for
 * another page size, source size or range length is one too.
 */
export function decodeWorkingSet(b: Uint8Array, shape?: WorkingSetShape, path?: string): WorkingSetFile {
  const { words, ...rest } = decodeSet(b, shape, path);
  return { ...rest, runs: runsOf({ ...rest, words }) };
}

/**
 * decodeWorkingSet without an object per run. With `checkRuns` false the runs are left for the
 * backend to check (serve(): the kernel backend does it in C++, faster than a loop here before
 * the program's first byte); checkRuns() says what they must be.
 */
export function decodeSet(b: Uint8Array, shape?: WorkingSetShape, path?: string, runsChecked = true): LoadedSet {
  const corrupt = (why: string) => corruptSet(why, path);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const why = (reason: CorruptReason, detail = 0, a = 0): Error => corrupt(CORRUPT_WHY[reason](detail, a));
  if (buf.length < HEADER + TRAILER) throw why(CorruptReason.truncated, buf.length);
  if (buf.readUInt32LE(0) !== MAGIC) throw why(CorruptReason.notASet);
  const version = buf.readUInt16LE(4);
  if (version !== WORKING_SET_VERSION) throw versionError(version, path);
  if (buf.readUInt16LE(6) !== HEADER) throw why(CorruptReason.headerSize);
  const count = buf.readUInt32LE(12);
  if (buf.length !== HEADER + count * RUN + TRAILER) throw why(CorruptReason.runCount, count, buf.length);
  const end = HEADER + count * RUN;
  const sum = buf.readUInt32LE(end);
  if (checksum(buf.subarray(0, end)) !== sum) throw why(CorruptReason.checksum);
  const pageSize = buf.readUInt32LE(8);
  const sourceSize = Number(buf.readBigUInt64LE(16));
  const rangeLength = Number(buf.readBigUInt64LE(24));
  if (!Number.isSafeInteger(sourceSize) || !Number.isSafeInteger(rangeLength)) throw why(CorruptReason.past2To53);
  if (pageSize === 0 || (pageSize & (pageSize - 1)) !== 0 || rangeLength % pageSize !== 0) throw why(CorruptReason.pageSize);
  if (shape) {
    const mismatch = mismatchError({ pageSize, sourceSize, rangeLength }, shape, path);
    if (mismatch) throw mismatch;
  }
  const words = runWords(buf, count);
  if (runsChecked) checkRuns(words, rangeLength / pageSize, corrupt);
  return { version, pageSize, sourceSize, rangeLength, generation: buf.readUInt32LE(32), checksum: sum, words };
}

/**
 * The runs of a set ([first, count, flags] words) of a range of `pages` pages: none empty or
 * leaving the range, none overlapping another, flags in byte 0 (bit 0 only), age in byte 1,
 * bytes 2-3 zero. The same rule as native WorkingSets' check (native/sources/set_order.cc).
 */
export function checkRuns(words: Uint32Array, pages: number, corrupt: (why: string) => Error): void {
  for (let i = 0; i * 3 < words.length; i++) {
    const n = words[i * 3 + 1];
    if (n === 0 || words[i * 3] + n > pages || (words[i * 3 + 2] & ~(WRITE | 0xff00)) !== 0) throw corrupt(`bad run ${i}`);
  }
  const overlap = firstOverlap(words);
  if (overlap >= 0) throw corrupt(`a page of run ${overlap} is in an earlier run too`);
}

/**
 * Why a file is corrupt, by reason: SetLoadFailure::Reason in native/sources/set_file.h, which
 * reads a set off the JS thread (serve() in background mode) with the same checks as decodeSet.
 */
export enum CorruptReason { truncated, notASet, headerSize, runCount, checksum, past2To53, pageSize, badRun, tooLarge }
export const CORRUPT_WHY: readonly ((detail: number, a: number) => string)[] = [
  (size) => `${size} bytes, truncated`,
  () => 'not a working-set file',
  () => 'bad header size',
  (count, size) => `${count} runs need ${HEADER + count * RUN + TRAILER} bytes, the file has ${size}: truncated`,
  () => 'checksum mismatch',
  () => 'a size past 2^53 bytes',
  () => 'bad page size or range length',
  (run) => `bad run ${run}`,
  (size, max) => tooLargeWhy(size, max, true),
];

function tooLargeWhy(size: number, max: number, ofRange: boolean): string {
  return `${size} bytes, more than ${max}, the most a set ${ofRange ? 'of this range ' : ''}can hold`;
}

export function versionError(version: number, path?: string): Error {
  return workingSetError('ERR_UFFD_WORKING_SET_VERSION',
    `Working-set file version ${version}; this version of userfaultfd reads version ${WORKING_SET_VERSION}`, path);
}

/** ERR_UFFD_WORKING_SET_MISMATCH when a set recorded for `file`'s shape is loaded for `shape`; else null. */
export function mismatchError(file: WorkingSetShape, shape: WorkingSetShape, path?: string): Error | null {
  const diffs: string[] = [];
  if (file.pageSize !== shape.pageSize) diffs.push(`page size ${file.pageSize}, here ${shape.pageSize}`);
  if (file.sourceSize !== shape.sourceSize) diffs.push(`source size ${file.sourceSize}, here ${shape.sourceSize}`);
  if (file.rangeLength !== shape.rangeLength) diffs.push(`range length ${file.rangeLength}, here ${shape.rangeLength}`);
  return diffs.length === 0 ? null : workingSetError('ERR_UFFD_WORKING_SET_MISMATCH',
    `Working set recorded for another source or range (${diffs.join('; ')})`, path);
}

/** The error of a set whose runs are not what checkRuns() says. */
export function corruptSet(why: string, path?: string): Error {
  return workingSetError('ERR_UFFD_WORKING_SET_CORRUPT', `Corrupt working-set file (${why})`, path);
}

/** The run entries as 32-bit words (aligned, in this machine's byte order). */
function runWords(buf: Buffer, count: number): Uint32Array {
  const words = new Uint32Array(count * 3);
  if (os.endianness() === 'LE') {
    new Uint8Array(words.buffer).set(buf.subarray(HEADER, HEADER + count * RUN));
  } else {
    for (let i = 0; i < words.length; i++) words[i] = buf.readUInt32LE(HEADER + i * 4);
  }
  return words;
}

/**
 * The later (in file order) of two runs sharing a page, or -1. Sorted by first page, so that
 * nothing is allocated by the range's size: a checksummed 56-byte file may claim a range of
 * 2^63 bytes, and a bitmap of its pages would be gigabytes (or a RangeError).
 */
function firstOverlap(words: Uint32Array): number {
  const count = words.length / 3;
  const order = Uint32Array.from({ length: count }, (_, i) => i).sort((a, b) => words[a * 3] - words[b * 3]);
  let later = -1;
  for (let k = 1; k < count; k++) {
    const prev = order[k - 1] * 3;
    if (words[order[k] * 3] < words[prev] + words[prev + 1]) later = Math.max(later, order[k], order[k - 1]);
  }
  return later;
}

/**
 * Reads and checks a working-set file; null when there is none at `path`. Only a regular file is
 * read (a FIFO or /dev/zero is a UffdError EINVAL at once), and no larger than a set can be: for
 * `shape`, one run per page of its range; without one, MAX_WORKING_SET_BYTES.
 */
export function readWorkingSet(path: string, shape?: WorkingSetShape): WorkingSetFile | null {
  const b = readSetBytes(path, shape);
  return b === null ? null : decodeWorkingSet(b, shape, path);
}

/** readWorkingSet without an object per run; decodeSet says what runsChecked is. */
export function readSet(path: string, shape?: WorkingSetShape, runsChecked = true): LoadedSet | null {
  const b = readSetBytes(path, shape);
  return b === null ? null : decodeSet(b, shape, path, runsChecked);
}

/** The most bytes a set can take: for `shape`, one run per page of its range. */
export function maxSetBytes(shape?: WorkingSetShape): number {
  return shape ? HEADER + TRAILER + RUN * Math.min(shape.rangeLength / shape.pageSize, 0xffffffff) : MAX_WORKING_SET_BYTES;
}

/** The error of a set file larger than `max` bytes. */
export function tooLargeSet(size: number, max: number, shape?: WorkingSetShape, path?: string): Error {
  return corruptSet(tooLargeWhy(size, max, shape !== undefined), path);
}

function readSetBytes(path: string, shape?: WorkingSetShape): Buffer | null {
  const max = maxSetBytes(shape);
  try {
    return readRegularFile(path, max, (size) => tooLargeSet(size, max, shape, path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Writes the file whole or not at all: a crash mid-write leaves the old file, never half a new
 * one, and a symlink planted beside it is never written through (base/files.ts).
 */
export function writeWorkingSet(path: string, f: Omit<WorkingSetFile, 'version'> | Buffer): void {
  writeFileAtomic(path, Buffer.isBuffer(f) ? f : encodeWorkingSet(f));
}

/** Runs as the backends take them: [firstPage, pageCount, flags] words, in order (LoadedSet.words). */
export function toRunWords(runs: WorkingSetRun[]): Uint32Array {
  const out = new Uint32Array(runs.length * 3);
  runs.forEach((r, i) => {
    out[i * 3] = r.first;
    out[i * 3 + 1] = r.count;
    out[i * 3 + 2] = (r.write ? WRITE : 0) | (Math.min(r.age, MAX_AGE) << 8);
  });
  return out;
}

/** Runs as [firstPage, pageCount] pairs, in order: what a shared image's prefetch takes. */
export function toRunPairs(runs: WorkingSetRun[]): Uint32Array {
  const out = new Uint32Array(runs.length * 2);
  runs.forEach((r, i) => {
    out[i * 2] = r.first;
    out[i * 2 + 1] = r.count;
  });
  return out;
}

export function setPages(runs: WorkingSetRun[]): number {
  let n = 0;
  for (const r of runs) n += r.count;
  return n;
}

// ---- refining ---------------------------------------------------------------------------------

/**
 * The set to save after a run: `recorded` holds this run's first touches as [firstPage,
 * pageCount, write] triples in order; `loaded` the set prefetched in this run (or null), of
 * which the pages in `installed` (one bit per page of the range, or null) were installed ahead
 * of the program.
 *
 * Without a loaded set, the recording is the set. With one: a page that faulted was touched
 * (age 0); a loaded page that was not installed ahead and never faulted was untouched (age + 1);
 * a page installed ahead gives no fault whether touched or not, so its age stays. Pages are
 * dropped at `maxAge`; new pages (faults outside the loaded set) follow the loaded order; then
 * the first `maxPages` are kept.
 */
export function refine(loaded: WorkingSetRun[] | null, installed: Uint8Array | null, recorded: Uint32Array,
                       rangePages: number, o: Omit<CheckedRefine, 'pages'>): WorkingSetRun[] {
  const touched = new Int8Array(rangePages).fill(-1); // -1 untouched, else the write flag
  for (let i = 0; i + 2 < recorded.length; i += 3) {
    for (let p = recorded[i]; p < recorded[i] + recorded[i + 1]; p++) touched[p] = recorded[i + 2] ? 1 : 0;
  }
  const out: PageEntry[] = [];
  const inLoaded = new Uint8Array(rangePages);
  if (loaded) {
    for (const r of loaded) {
      for (let p = r.first; p < r.first + r.count; p++) {
        inLoaded[p] = 1;
        if (touched[p] >= 0) {
          out.push({ page: p, write: touched[p] === 1, age: 0 });
        } else {
          const age = installed !== null && (installed[p >> 3] >> (p & 7)) & 1 ? r.age : r.age + 1;
          if (age < o.maxAge) out.push({ page: p, write: r.write, age });
        }
      }
    }
  }
  for (let i = 0; i + 2 < recorded.length; i += 3) {
    for (let p = recorded[i]; p < recorded[i] + recorded[i + 1]; p++) {
      if (!inLoaded[p]) out.push({ page: p, write: recorded[i + 2] !== 0, age: 0 });
    }
  }
  return toRuns(out.length > o.maxPages ? out.slice(0, o.maxPages) : out);
}

/**
 * refine()'s `installed` bitmap for a prefetcher that installs the loaded set in order and went
 * past its first `cursor` pages (a shared image's store counts pages so, not page by page).
 */
export function installedAhead(loaded: WorkingSetRun[], cursor: number, rangePages: number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(rangePages / 8));
  let left = cursor;
  for (const r of loaded) {
    for (let p = r.first; p < r.first + r.count && left > 0; p++, left--) bits[p >> 3] |= 1 << (p & 7);
    if (left <= 0) break;
  }
  return bits;
}

interface PageEntry { page: number; write: boolean; age: number }

/** Pages in order, as runs: neighbours with the same flags merge. */
function toRuns(pages: PageEntry[]): WorkingSetRun[] {
  const runs: WorkingSetRun[] = [];
  let last: WorkingSetRun | null = null;
  for (const e of pages) {
    if (last && last.first + last.count === e.page && last.write === e.write && last.age === e.age) {
      last.count++;
    } else {
      last = { first: e.page, count: 1, write: e.write, age: e.age };
      runs.push(last);
    }
  }
  return runs;
}

// ---- recording (the simulator's; native/sources/working_set.cc is the kernel backend's) ---------------

/** First touches of one range's pages, in order, merged into runs as they come. */
export class Recorder {
  private readonly seen: Uint8Array;
  private readonly runs: number[] = []; // [first, count, write] triples

  constructor(pages: number) {
    this.seen = new Uint8Array(pages);
  }

  record(page: number, write: boolean): void {
    if (this.seen[page]) return;
    this.seen[page] = 1;
    const n = this.runs.length;
    const w = write ? 1 : 0;
    if (n > 0 && this.runs[n - 1] === w && this.runs[n - 3] + this.runs[n - 2] === page) this.runs[n - 2]++;
    else this.runs.push(page, 1, w);
  }

  recorded(): Uint32Array {
    return Uint32Array.from(this.runs);
  }
}

// ---- the source's size, which a set must match ------------------------------------------------

export function sourceSize(source: PageSource): number {
  if (source.runs !== null) return sparseSize(source.runs);
  if (source.kind === 'zero') return 0;
  if (source.kind === 'buffer') return Math.max(0, source.bytes!.byteLength - source.offset);
  const st = typeof source.file === 'number' ? fs.fstatSync(source.file) : fs.statSync(source.file!);
  return Math.max(0, st.size - source.offset);
}

/**
 * The source's size where it must be known now: a custom source's `size`, an http source's when
 * given (else ERR_UFFD_SOURCE_SIZE_UNKNOWN; `why` says what needs it); a file that cannot be
 * stat'ed fails as serve() would (a UffdError naming open).
 */
export function knownSourceSize(source: PageSource, why: string): number {
  if (source.custom !== null) {
    if (source.custom.size !== undefined) return source.custom.size;
    throw codedError('ERR_UFFD_SOURCE_SIZE_UNKNOWN', `${why}: give PageSource.http the object's { size }`);
  }
  try {
    return sourceSize(source);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw uffdError(err.code ?? 'EIO', 'open', undefined, typeof source.file === 'string' ? source.file : undefined);
  }
}
