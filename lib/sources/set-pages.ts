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
 * Opens and checks the page file of a loaded set. null when there is none; a coded error when
 * it is corrupt (ERR_UFFD_WORKING_SET_CORRUPT) or does not match the set or the source as it is
 * now (ERR_UFFD_WORKING_SET_STALE); a UffdError EINVAL when it is not a regular file (opened
 * without blocking: base/files.ts). The caller closes the fd.
 */
export function openSetPages(path: string, runs: Uint32Array, setChecksum: number, source: PageSource,
                             pageSize: number): OpenSetPages | null {
  let fd: number;
  let size: number;
  try {
    ({ fd, size } = openRegularFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    checkSetPages(fd, size, path, runs, setChecksum, source, pageSize);
    return { fd, offset: pageSize };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function checkSetPages(fd: number, size: number, path: string, runs: Uint32Array, setChecksum: number, source: PageSource,
                       pageSize: number): void {
  const corrupt = (why: string) => workingSetError('ERR_UFFD_WORKING_SET_CORRUPT', `Corrupt working-set page file (${why})`, path);
  const stale = (why: string) => workingSetError('ERR_UFFD_WORKING_SET_STALE', `Stale working-set page file (${why}); not used`, path);
  const h = Buffer.alloc(HEADER);
  if (size < HEADER || fs.readSync(fd, h, 0, HEADER, 0) !== HEADER) throw corrupt(`${size} bytes, truncated`);
  if (h.readUInt32LE(0) !== MAGIC) throw corrupt('not a working-set page file');
  if (h.readUInt16LE(4) !== SET_PAGES_VERSION) {
    throw workingSetError('ERR_UFFD_WORKING_SET_VERSION',
      `Working-set page file version ${h.readUInt16LE(4)}; this version of userfaultfd reads version ${SET_PAGES_VERSION}`, path);
  }
  const sum = crypto.createHash('sha256').update(h.subarray(0, HEADER - 4)).digest().readUInt32LE(0);
  if (h.readUInt16LE(6) !== HEADER || sum !== h.readUInt32LE(HEADER - 4)) throw corrupt('header checksum mismatch');
  if (h.readUInt32LE(8) !== pageSize) throw stale(`recorded with ${h.readUInt32LE(8)}-byte pages, here ${pageSize}`);
  const count = pageCount(runs);
  if (h.readUInt32LE(12) !== setChecksum || Number(h.readBigUInt64LE(16)) !== count) throw stale('written for another working set');
  if (size !== pageSize * (1 + count)) throw corrupt(`${size} bytes for ${count} pages: truncated`);
  const src = sourceId(source);
  if (Number(h.readBigUInt64LE(24)) !== src.size || h.readBigUInt64LE(40) !== BigInt(src.offset)) {
    throw stale(`cut from a source of ${h.readBigUInt64LE(24)} bytes, the source has ${src.size}`);
  }
  if (h.readBigUInt64LE(32) !== src.mtimeNs) throw stale('the source was modified since it was written');
  const sfd = fs.openSync(src.path, 'r');
  try {
    const hash = sampleHash(sfd, src, pagesAt(runs, samplePositions(count)), pageSize);
    if (!hash.equals(h.subarray(48, 80))) throw stale('sampled pages of the source differ');
  } finally {
    fs.closeSync(sfd);
  }
}
