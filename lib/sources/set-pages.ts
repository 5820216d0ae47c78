/**
 * The compact image of a working set (REAP, ASPLOS'21): the set's pages, in recorded order, in
 * one file beside the set (`<set>.pages`). A cold prefetch reads it sequentially instead of
 * reading the source at the set's scattered offsets. It names the set file it belongs to (by
 * its checksum) and the source it was cut from (size, mtime, a hash of sampled pages): one that
 * no longer matches is stale and never served (docs/working-sets.md). The format lives here
 * only; both backends take the open, checked file.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import type { PageSource } from './page-source';
import { openRegularFile, writeFileAtomicWith } from '../base/files';
import { errnoName, uffdError } from '../base/errors';
import { workingSetError } from './working-set';

const MAGIC = 0x50574655; // 'UFWP', little-endian
export const SET_PAGES_VERSION = 1;
const HEADER = 96; // used bytes of the header page
const SAMPLES = 8;
const CHUNK = 1 << 20; // bytes written at a time

/** The page file of the set at `setPath`. */
export const setPagesPath = (setPath: string): string => `${setPath}.pages`;

/** What the page file must match: the set (by checksum) and the source as it is now. */
interface SourceId {
  path: string;
  offset: number;
  size: number;
  mtimeNs: bigint;
}

/** A checked page file, open (runs here: [first, count, flags] words, LoadedSet.words): the set's page i is at `offset + i * pageSize` of `fd`. */
export interface OpenSetPages {
  fd: number;
  offset: number;
}

function sourceId(source: PageSource): SourceId {
  const st = fs.statSync(source.file as string, { bigint: true });
  return { path: source.file as string, offset: source.offset, size: Math.max(0, Number(st.size) - source.offset), mtimeNs: st.mtimeNs };
}

/** Positions of the sampled pages in the order: spread over it. */
function samplePositions(count: number): number[] {
  const k = Math.min(SAMPLES, count);
  return Array.from({ length: k }, (_, j) => Math.floor(((2 * j + 1) * count) / (2 * k)));
}

/** The page of the set at each position, from its runs ([first, count, flags] words). */
function pagesAt(runs: Uint32Array, positions: number[]): number[] {
  const out: number[] = [];
  let pos = 0;
  let i = 0;
  for (let r = 0; r < runs.length; r += 3) {
    while (i < positions.length && positions[i] < pos + runs[r + 1]) out.push(runs[r] + (positions[i++] - pos));
    pos += runs[r + 1];
  }
  return out;
}

function pageCount(runs: Uint32Array): number {
  let n = 0;
  for (let r = 1; r < runs.length; r += 3) n += runs[r];
  return n;
}

function sampleHash(fd: number, src: SourceId, pages: number[], pageSize: number): Buffer {
  const h = crypto.createHash('sha256');
  const page = Buffer.alloc(pageSize);
  for (const p of pages) {
    readStretch(fd, src, p, 1, pageSize, page);
    h.update(page);
  }
  return h.digest();
}

/**
 * The header page (HEADER bytes used, zeros after), little-endian: 0 magic u32, 4 version u16,
 * 6 HEADER u16, 8 page size u32, 12 the set's checksum u32, 16 page count u64, 24 source size
 * u64 (from its offset), 32 source mtime ns u64, 40 source offset u64, 48 SHA-256 of the
 * sampled pages (samplePositions, each as readStretch reads it), 80 samples u32, HEADER - 4 the
 * first 4 bytes of SHA-256 of the bytes before it (read little-endian). The set's page i follows
 * at (1 + i) * page size.
 */
function header(pageSize: number, setChecksum: number, count: number, src: SourceId, hash: Buffer): Buffer {
  const b = Buffer.alloc(pageSize);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt16LE(SET_PAGES_VERSION, 4);
  b.writeUInt16LE(HEADER, 6);
  b.writeUInt32LE(pageSize, 8);
  b.writeUInt32LE(setChecksum, 12);
  b.writeBigUInt64LE(BigInt(count), 16);
  b.writeBigUInt64LE(BigInt(src.size), 24);
  b.writeBigUInt64LE(src.mtimeNs, 32);
  b.writeBigUInt64LE(BigInt(src.offset), 40);
  hash.copy(b, 48);
  b.writeUInt32LE(Math.min(SAMPLES, count), 80);
  b.writeUInt32LE(crypto.createHash('sha256').update(b.subarray(0, HEADER - 4)).digest().readUInt32LE(0), HEADER - 4);
  return b;
}

/**
 * Writes the page file of a set (its runs, and the checksum of the set file about to be
 * written) from `source`, a file given by path: the pages in order, each as the range installs
 * it. Synchronous: about the time of reading the set's pages once (docs/working-sets.md).
 */
export function writeSetPages(path: string, runs: Uint32Array, setChecksum: number, source: PageSource,
                              pageSize: number): void {
  const src = sourceId(source);
  const count = pageCount(runs);
  const fd = fs.openSync(src.path, 'r');
  try {
    const hash = sampleHash(fd, src, pagesAt(runs, samplePositions(count)), pageSize);
    writeFileAtomicWith(path, (out) => {
      fs.writeSync(out, header(pageSize, setChecksum, count, src, hash));
      const chunk = Buffer.alloc(Math.max(CHUNK, pageSize));
      let used = 0;
      const flush = (): void => {
        for (let o = 0; o < used;) o += fs.writeSync(out, chunk, o, used - o);
        used = 0;
      };
      for (let r = 0; r < runs.length; r += 3) {
        const end = runs[r] + runs[r + 1];
        for (let p = runs[r]; p < end;) {
          // Whole stretches of the run at a time: few reads for runs of many pages.
          const n = Math.min(end - p, Math.floor((chunk.length - used) / pageSize));
          if (n === 0) {
            flush();
            continue;
          }
          readStretch(fd, src, p, n, pageSize, chunk.subarray(used, used + n * pageSize));
          used += n * pageSize;
          p += n;
        }
      }
      flush();
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Pages [page, page + n) of the source as a range installs them: zero-padded, zeros past the end. */
function readStretch(fd: number, src: SourceId, page: number, n: number, pageSize: number, into: Buffer): void {
  into.fill(0);
  const at = page * pageSize;
  const want = Math.max(0, Math.min(n * pageSize, src.size - at));
  let done = 0;
  while (done < want) {
    const got = fs.readSync(fd, into, done, want - done, src.offset + at + done);
    if (got === 0) break;
    done += got;
  }
}

/**
 * Why a page file is refused, as the check finds it here (checkSetPages) and on the native
 * prefetch thread (native/sources/set_pages.cc, which reports [reason, a, b]): setPagesError
 * turns either into the coded error. The header's layout (offsets in header()) and these
 * numbers are the format's one definition; set_pages.cc mirrors them.
 */
export enum PagesReason {
  errno = 0, // a: the errno of a failed read
  truncated = 1, // a: the file's size
  notPages = 2,
  version = 3, // a: the file's version
  headerSum = 4,
  pageSize = 5, // a: the page size it was written with
  otherSet = 6,
  size = 7, // a: the file's size; b: the set's page count
  sourceSize = 8, // a: the source size it was cut from; b: the source's size now
  modified = 9,
  samples = 10,
}

/** The error for a page file at `path` refused for `reason` (PagesReason), in this process's `pageSize`. */
export function setPagesError(reason: number, a: number, b: number, path: string, pageSize: number): Error {
  const corrupt = (why: string) => workingSetError('ERR_UFFD_WORKING_SET_CORRUPT', `Corrupt working-set page file (${why})`, path);
  const stale = (why: string) => workingSetError('ERR_UFFD_WORKING_SET_STALE', `Stale working-set page file (${why}); not used`, path);
  switch (reason) {
    case PagesReason.errno: return uffdError(errnoName(a), 'read', undefined, `working-set page file ${path}`);
    case PagesReason.truncated: return corrupt(`${a} bytes, truncated`);
    case PagesReason.notPages: return corrupt('not a working-set page file');
    case PagesReason.version: return workingSetError('ERR_UFFD_WORKING_SET_VERSION',
      `Working-set page file version ${a}; this version of userfaultfd reads version ${SET_PAGES_VERSION}`, path);
    case PagesReason.headerSum: return corrupt('header checksum mismatch');
    case PagesReason.pageSize: return stale(`recorded with ${a}-byte pages, here ${pageSize}`);
    case PagesReason.otherSet: return stale('written for another working set');
    case PagesReason.size: return corrupt(`${a} bytes for ${b} pages: truncated`);
    case PagesReason.sourceSize: return stale(`cut from a source of ${a} bytes, the source has ${b}`);
    case PagesReason.modified: return stale('the source was modified since it was written');
    case PagesReason.samples: return stale('sampled pages of the source differ');
    default: return corrupt(`reason ${reason}`);
  }
}

/**
 * Opens and checks the page file of a loaded set. null when there is none; a coded error when
 * it is corrupt (ERR_UFFD_WORKING_SET_CORRUPT) or does not match the set or the source as it is
 * now (ERR_UFFD_WORKING_SET_STALE); a UffdError EINVAL when it is not a regular file (opened
 * without blocking: base/files.ts). The caller closes the fd.
 */
export function openSetPages(path: string, runs: Uint32Array, setChecksum: number, source: PageSource,
                             pageSize: number): OpenSetPages | null {
  const file = openSetPagesLater(path);
  if (file === null) return null;
  try {
    checkSetPages(file.fd, file.size, path, runs, setChecksum, source, pageSize);
    return { fd: file.fd, offset: pageSize };
  } catch (e) {
    fs.closeSync(file.fd);
    throw e;
  }
}

/**
 * serve()'s page file for the set at `setPath` (its runs, when loaded now, and checksum):
 * checked now, or only opened (`later`: background mode) for the backend to check once it has
 * loaded the set; null when there is no set or it has no runs. A failure is returned, not
 * thrown: serve() reports it as an 'error' event, and the pages come from the source.
 */
export function servedSetPages(setPath: string | undefined, runs: Uint32Array | null, setChecksum: number, later: boolean,
                               source: PageSource, pageSize: number):
  { checked: OpenSetPages | null; later: number | null; error: Error | null } | null {
  if (setPath === undefined || (runs === null && !later)) return null;
  const path = setPagesPath(setPath);
  try {
    if (later) return { checked: null, later: openSetPagesLater(path)?.fd ?? null, error: null };
    return { checked: openSetPages(path, runs!, setChecksum, source, pageSize), later: null, error: null };
  } catch (err) {
    return { checked: null, later: null, error: err as Error };
  }
}

/**
 * The page file opened, not checked yet (background mode: the backend checks it once it has
 * loaded the set); null when there is none. Not a regular file: a UffdError EINVAL now.
 */
export function openSetPagesLater(path: string): { fd: number; size: number } | null {
  try {
    return openRegularFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Throws setPagesError's error when the page file open at `fd` (`size` bytes) does not belong to the set and the source as it is now. */
export function checkSetPages(fd: number, size: number, path: string, runs: Uint32Array, setChecksum: number, source: PageSource,
                              pageSize: number): void {
  const reason = pagesRefusal(fd, size, runs, setChecksum, source, pageSize);
  if (reason !== null) throw setPagesError(reason[0], reason[1] ?? 0, reason[2] ?? 0, path, pageSize);
}

function pagesRefusal(fd: number, size: number, runs: Uint32Array, setChecksum: number, source: PageSource,
                      pageSize: number): [PagesReason, number?, number?] | null {
  const h = Buffer.alloc(HEADER);
  if (size < HEADER || fs.readSync(fd, h, 0, HEADER, 0) !== HEADER) return [PagesReason.truncated, size];
  if (h.readUInt32LE(0) !== MAGIC) return [PagesReason.notPages];
  if (h.readUInt16LE(4) !== SET_PAGES_VERSION) return [PagesReason.version, h.readUInt16LE(4)];
  const sum = crypto.createHash('sha256').update(h.subarray(0, HEADER - 4)).digest().readUInt32LE(0);
  if (h.readUInt16LE(6) !== HEADER || sum !== h.readUInt32LE(HEADER - 4)) return [PagesReason.headerSum];
  if (h.readUInt32LE(8) !== pageSize) return [PagesReason.pageSize, h.readUInt32LE(8)];
  const count = pageCount(runs);
  if (h.readUInt32LE(12) !== setChecksum || Number(h.readBigUInt64LE(16)) !== count) return [PagesReason.otherSet];
  if (size !== pageSize * (1 + count)) return [PagesReason.size, size, count];
  const src = sourceId(source);
  if (Number(h.readBigUInt64LE(24)) !== src.size || h.readBigUInt64LE(40) !== BigInt(src.offset)) {
    return [PagesReason.sourceSize, Number(h.readBigUInt64LE(24)), src.size];
  }
  if (h.readBigUInt64LE(32) !== src.mtimeNs) return [PagesReason.modified];
  const sfd = fs.openSync(src.path, 'r');
  try {
    const hash = sampleHash(sfd, src, pagesAt(runs, samplePositions(count)), pageSize);
    if (!hash.equals(h.subarray(48, 80))) return [PagesReason.samples];
  } finally {
    fs.closeSync(sfd);
  }
  return null;
}
