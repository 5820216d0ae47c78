/**
 * Working sets: the pages a program touched first in one run, in order, saved to a small file
 * and prefetched on the next run. The file format lives here only (docs/working-sets.md); both
 * backends pass parsed runs in and take recorded runs out as flat Uint32Arrays.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import { invalidArgType, outOfRange } from '../base/errors';
import { readRegularFile, writeFileAtomic } from '../base/files';
import type { PageSource } from './page-source';
import type { RefineOptions } from '../base/types';
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
}

/** What a set must have been recorded for to be prefetched here. */
export interface WorkingSetShape {
  pageSize: number;
  sourceSize: number;
  rangeLength: number;
}

export type WorkingSetErrorCode =
  | 'ERR_UFFD_WORKING_SET_CORRUPT' | 'ERR_UFFD_WORKING_SET_VERSION' | 'ERR_UFFD_WORKING_SET_MISMATCH'
  | 'ERR_UFFD_NOT_RECORDING';

function workingSetError(code: WorkingSetErrorCode, message: string, path?: string): Error {
  const e = new Error(path === undefined ? message : `${message}: ${path}`);
  Object.assign(e, { code }, path === undefined ? {} : { path });
  return e;
}

export interface CheckedRefine { maxPages: number; maxAge: number }

export function toRefineOptions(value: unknown, pageSize: number): CheckedRefine {
  if (value === undefined) return { maxPages: Infinity, maxAge: 4 };
  if (value === null || typeof value !== 'object') throw invalidArgType('options.workingSet', 'an object', value);
  checkOptionKeys(value, OPTION_KEYS.workingSet, 'serve()', 'options.workingSet');
  const o = value as RefineOptions;
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
  return { maxPages, maxAge };
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
 * Parses and checks a working-set file. Anything short of a whole, intact file of this version
 * is a coded error, never a set with wrong pages in it; with `shape`, a set recorded for
 * another page size, source size or range length is one too.
 */
export function decodeWorkingSet(b: Uint8Array, shape?: WorkingSetShape, path?: string): WorkingSetFile {
  const corrupt = (why: string) => workingSetError('ERR_UFFD_WORKING_SET_CORRUPT', `Corrupt working-set file (${why})`, path);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < HEADER + TRAILER) throw corrupt(`${buf.length} bytes, truncated`);
  if (buf.readUInt32LE(0) !== MAGIC) throw corrupt('not a working-set file');
  const version = buf.readUInt16LE(4);
  if (version !== WORKING_SET_VERSION) {
    throw workingSetError('ERR_UFFD_WORKING_SET_VERSION',
      `Working-set file version ${version}; this version of userfaultfd reads version ${WORKING_SET_VERSION}`, path);
  }
  if (buf.readUInt16LE(6) !== HEADER) throw corrupt('bad header size');
  const count = buf.readUInt32LE(12);
  if (buf.length !== HEADER + count * RUN + TRAILER) throw corrupt(`${count} runs need ${HEADER + count * RUN + TRAILER} bytes, the file has ${buf.length}: truncated`);
  const end = HEADER + count * RUN;
  if (checksum(buf.subarray(0, end)) !== buf.readUInt32LE(end)) throw corrupt('checksum mismatch');
  const pageSize = buf.readUInt32LE(8);
  const sourceSize = Number(buf.readBigUInt64LE(16));
  const rangeLength = Number(buf.readBigUInt64LE(24));
  if (!Number.isSafeInteger(sourceSize) || !Number.isSafeInteger(rangeLength)) throw corrupt('a size past 2^53 bytes');
  if (pageSize === 0 || (pageSize & (pageSize - 1)) !== 0 || rangeLength % pageSize !== 0) throw corrupt('bad page size or range length');
  if (shape) {
    const diffs: string[] = [];
    if (pageSize !== shape.pageSize) diffs.push(`page size ${pageSize}, here ${shape.pageSize}`);
    if (sourceSize !== shape.sourceSize) diffs.push(`source size ${sourceSize}, here ${shape.sourceSize}`);
    if (rangeLength !== shape.rangeLength) diffs.push(`range length ${rangeLength}, here ${shape.rangeLength}`);
    if (diffs.length > 0) {
      throw workingSetError('ERR_UFFD_WORKING_SET_MISMATCH',
        `Working set recorded for another source or range (${diffs.join('; ')})`, path);
    }
  }
  const pages = rangeLength / pageSize;
  const runs: WorkingSetRun[] = new Array(count);
  const v = new DataView(buf.buffer, buf.byteOffset, end);
  for (let i = 0, o = HEADER; o < end; i++, o += RUN) {
    const first = v.getUint32(o, true);
    const n = v.getUint32(o + 4, true);
    const flags = v.getUint8(o + 8);
    if (n === 0 || first + n > pages || (flags & ~WRITE) !== 0 || v.getUint16(o + 10, true) !== 0) {
      throw corrupt(`bad run ${i}`);
    }
    runs[i] = { first, count: n, write: (flags & WRITE) !== 0, age: v.getUint8(o + 9) };
  }
  const overlap = firstOverlap(runs);
  if (overlap >= 0) throw corrupt(`a page of run ${overlap} is in an earlier run too`);
  return { version, pageSize, sourceSize, rangeLength, generation: buf.readUInt32LE(32), runs };
}

/**
 * The later (in file order) of two runs sharing a page, or -1. Sorted by first page, so that
 * nothing is allocated by the range's size: a checksummed 56-byte file may claim a range of
 * 2^63 bytes, and a bitmap of its pages would be gigabytes (or a RangeError).
 */
function firstOverlap(runs: WorkingSetRun[]): number {
  const order = Array.from(runs.keys()).sort((a, b) => runs[a].first - runs[b].first);
  let later = -1;
  for (let k = 1; k < order.length; k++) {
    const prev = runs[order[k - 1]];
    if (runs[order[k]].first < prev.first + prev.count) later = Math.max(later, order[k], order[k - 1]);
  }
  return later;
}

/**
 * Reads and checks a working-set file; null when there is none at `path`. Only a regular file is
 * read (a FIFO or /dev/zero is a UffdError EINVAL at once), and no larger than a set can be: for
 * `shape`, one run per page of its range; without one, MAX_WORKING_SET_BYTES.
 */
export function readWorkingSet(path: string, shape?: WorkingSetShape): WorkingSetFile | null {
  const max = shape ? HEADER + TRAILER + RUN * Math.min(shape.rangeLength / shape.pageSize, 0xffffffff) : MAX_WORKING_SET_BYTES;
  let b: Buffer;
  try {
    b = readRegularFile(path, max, (size) => workingSetError('ERR_UFFD_WORKING_SET_CORRUPT',
      `Corrupt working-set file (${size} bytes, more than ${max}, the most a set ${shape ? 'of this range ' : ''}can hold)`, path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return decodeWorkingSet(b, shape, path);
}

/**
 * Writes the file whole or not at all: a crash mid-write leaves the old file, never half a new
 * one, and a symlink planted beside it is never written through (base/files.ts).
 */
export function writeWorkingSet(path: string, f: Omit<WorkingSetFile, 'version'>): void {
  writeFileAtomic(path, encodeWorkingSet(f));
}

/** The runs as the backends take them: [firstPage, pageCount] pairs, in order. */
export function toPrefetchRuns(runs: WorkingSetRun[]): Uint32Array {
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
 * which the prefetcher went past the first `cursor` pages.
 *
 * Without a loaded set, the recording is the set. With one: a page that faulted was touched
 * (age 0); a loaded page the prefetcher never reached and that never faulted was untouched
 * (age + 1); a page it installed gives no fault whether touched or not, so its age stays. Pages
 * are dropped at `maxAge`; new pages (faults outside the loaded set) follow the loaded order;
 * then the first `maxPages` are kept.
 */
export function refine(loaded: WorkingSetRun[] | null, cursor: number, recorded: Uint32Array,
                       rangePages: number, o: CheckedRefine): WorkingSetRun[] {
  const touched = new Int8Array(rangePages).fill(-1); // -1 untouched, else the write flag
  for (let i = 0; i + 2 < recorded.length; i += 3) {
    for (let p = recorded[i]; p < recorded[i] + recorded[i + 1]; p++) touched[p] = recorded[i + 2] ? 1 : 0;
  }
  const out: PageEntry[] = [];
  const inLoaded = new Uint8Array(rangePages);
  if (loaded) {
    let index = 0;
    for (const r of loaded) {
      for (let p = r.first; p < r.first + r.count; p++, index++) {
        inLoaded[p] = 1;
        if (touched[p] >= 0) {
          out.push({ page: p, write: touched[p] === 1, age: 0 });
        } else {
          const age = index < cursor ? r.age : r.age + 1;
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
  if (source.kind === 'zero') return 0;
  if (source.kind === 'buffer') return Math.max(0, source.bytes!.byteLength - source.offset);
  const st = typeof source.file === 'number' ? fs.fstatSync(source.file) : fs.statSync(source.file!);
  return Math.max(0, st.size - source.offset);
}
