/** Where served memory comes from. Answered natively (or by the simulator), no JS per fault. */
import { toBytes, toLength } from '../base/args';
import { invalidArgType, outOfRange } from '../base/errors';
import { constants } from '../base/constants';
import { checkOptionKeys, keysOf } from '../base/option-keys';
import { CUSTOM_OPTION_KEYS, CustomRead, CustomSourceOptions, CustomSpec, customSpec, openWithin, SourceInfo } from './custom-source';
import { HTTP_OPTION_KEYS, httpSpec, HttpSourceOptions } from './http-source';

export type PageSourceKind = 'zero' | 'buffer' | 'file' | 'custom';

export interface FileSourceOptions {
  /** Byte offset in the file of the range's first byte. */
  offset?: number;
  /**
   * How the file is read: 'pread' (default) into a bounce buffer, then UFFDIO_COPY; or 'mmap',
   * a private read-only mapping of the file that UFFDIO_COPY reads directly. Measured with
   * bench/page-source-file.js, pread was as fast or faster with the file cached, and 6-9x
   * faster for random access to a file on disk (docs/page-sources.md: "File reads").
   */
  mode?: 'mmap' | 'pread';
}

/**
 * One run of a sparse source (PageSource.sparse): bytes [offset, offset + length) of the served
 * range are the base source's bytes from `sourceOffset`.
 */
export interface SparseRun {
  offset: number;
  length: number;
  sourceOffset: number;
}

let nextSourceId = 1;

const FILE_OPTION_KEYS = keysOf<FileSourceOptions>({ offset: true, mode: true });

export class PageSource {
  /**
   * Identifies the bytes behind this source: a sparse view shares its base's. A file source
   * served several times on one uffd is opened once (one fd, whatever the ranges).
   */
  readonly id: number;

  private constructor(
    readonly kind: PageSourceKind,
    readonly bytes: Uint8Array | null,
    readonly file: string | number | null,
    readonly offset: number,
    readonly mode: 'mmap' | 'pread',
    /** PageSource.custom and PageSource.http: answered in JavaScript (lib/sources/custom-source.ts). */
    readonly custom: CustomSpec | null = null,
    /** PageSource.sparse: where the base source's bytes lie in the range (sorted, disjoint). */
    readonly runs: readonly SparseRun[] | null = null,
    id?: number,
  ) {
    this.id = id ?? nextSourceId++;
  }

  /** Every page reads as zeros (UFFDIO_ZEROPAGE). */
  static zero(): PageSource {
    return new PageSource('zero', null, null, 0, 'pread');
  }

  /** The bytes of `buf`, kept alive while served. Past its end, pages read as zeros. */
  static buffer(buf: Uint8Array | ArrayBuffer): PageSource {
    return new PageSource('buffer', toBytes(buf, 'buf'), null, 0, 'pread');
  }

  /** A file (path or open fd) from `offset`. Past its end, pages read as zeros. */
  static file(pathOrFd: string | number, options: FileSourceOptions = {}): PageSource {
    if (typeof pathOrFd === 'number') {
      if (!Number.isInteger(pathOrFd) || pathOrFd < 0) throw outOfRange('fd', 'a non-negative integer', pathOrFd);
    } else if (typeof pathOrFd !== 'string' || pathOrFd.length === 0 || pathOrFd.includes('\0')) {
      throw invalidArgType('pathOrFd', 'a non-empty string path or a file descriptor', pathOrFd);
    }
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    checkOptionKeys(options, FILE_OPTION_KEYS, 'PageSource.file()');
    const offset = options.offset === undefined ? 0 : toLength(options.offset, 'options.offset', true);
    const mode = options.mode ?? 'pread';
    if (mode !== 'mmap' && mode !== 'pread') throw invalidArgType('options.mode', "'mmap' or 'pread'", mode);
    return new PageSource('file', null, pathOrFd, offset, mode);
  }

  /**
   * Bytes from an asynchronous `read(offset, length, { signal })`: object storage, a peer,
   * anything. Faults are grouped into `chunkSize` windows, reads deduplicated, bounded,
   * retried and timed out; a fault whose read finally fails is answered by `onError`
   * (docs/remote-sources.md).
   */
  static custom(read: CustomRead, options: CustomSourceOptions): PageSource {
    checkOptionKeys(options, CUSTOM_OPTION_KEYS, 'PageSource.custom()');
    return new PageSource('custom', null, null, 0, 'pread', customSpec(read, options, constants.pageSize));
  }

  /**
   * An object behind an HTTP(S) URL that honours Range requests (S3, GCS and any S3-compatible
   * store, presigned or with `headers`), read with the platform's fetch. Its ETag is pinned at
   * the first request: an object replaced during a restore fails with ERR_UFFD_SOURCE_CHANGED.
   */
  static http(url: string | URL, options: HttpSourceOptions = {}): PageSource {
    checkOptionKeys(options, HTTP_OPTION_KEYS, 'PageSource.http()');
    return new PageSource('custom', null, null, 0, 'pread', httpSpec(url, options, constants.pageSize));
  }

  /**
   * A sparse view of `source`: each run's bytes of the served range are `source`'s bytes from
   * its `sourceOffset`; every other page reads as zeros (UFFDIO_ZEROPAGE), and serve()'s
   * fill() never fills those. Runs are page multiples, sorted, not overlapping. A checkpoint's
   * memory is such a view: the pages its image lists, in the order the image holds them
   * (lib/tools/criu-images.ts). Bytes a run places past the base's end read as zeros.
   */
  static sparse(source: PageSource, runs: readonly SparseRun[]): PageSource {
    if (!(source instanceof PageSource)) throw invalidArgType('source', 'a PageSource', source);
    if (source.runs !== null) throw invalidArgType('source', 'a PageSource that is not sparse itself', 'a sparse source');
    const checked = checkRuns(runs, constants.pageSize);
    if (source.custom !== null) {
      const base = source.custom;
      return new PageSource('custom', null, null, 0, 'pread', sparseSpec(base, checked), checked, source.id);
    }
    return new PageSource(source.kind, source.bytes, source.file, source.offset, source.mode, null, checked, source.id);
  }

  /**
   * The source's size (and, for http, the ETag it pinned), learned now rather than at the first
   * fault: a bad URL or credential fails here. Optional; serve() does not need it. One attempt,
   * bounded by the source's `timeoutMs` (ERR_UFFD_SOURCE_TIMEOUT).
   */
  async ready(): Promise<SourceInfo> {
    const c = this.custom;
    if (this.runs !== null) return { size: sparseSize(this.runs) };
    if (c !== null) {
      if (c.size !== undefined && c.open === null) return { size: c.size };
      return openWithin(c);
    }
    if (this.kind === 'buffer') return { size: Math.max(0, this.bytes!.byteLength - this.offset) };
    if (this.kind === 'zero') return { size: 0 };
    const fs = await import('fs');
    const st = typeof this.file === 'number' ? fs.fstatSync(this.file) : await fs.promises.stat(this.file!);
    return { size: Math.max(0, st.size - this.offset) };
  }
}

/** The bytes a sparse source spans: its last run's end. */
export function sparseSize(runs: readonly SparseRun[]): number {
  return runs.length === 0 ? 0 : runs[runs.length - 1].offset + runs[runs.length - 1].length;
}

function checkRuns(runs: unknown, pageSize: number): SparseRun[] {
  if (!Array.isArray(runs)) throw invalidArgType('runs', 'an array of { offset, length, sourceOffset }', runs);
  const out: SparseRun[] = [];
  let end = 0;
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i] as Partial<SparseRun> | null;
    if (r === null || typeof r !== 'object') throw invalidArgType(`runs[${i}]`, 'an object { offset, length, sourceOffset }', r);
    const offset = toLength(r.offset, `runs[${i}].offset`, true);
    const length = toLength(r.length, `runs[${i}].length`);
    const sourceOffset = toLength(r.sourceOffset, `runs[${i}].sourceOffset`, true);
    if (offset % pageSize !== 0 || length % pageSize !== 0) {
      throw outOfRange(`runs[${i}]`, `offset and length multiples of the page size (${pageSize})`, `${offset}, ${length}`);
    }
    if (offset < end) throw outOfRange(`runs[${i}].offset`, `at or after the previous run's end (${end}): runs are sorted and disjoint`, offset);
    if (!Number.isSafeInteger(offset + length) || !Number.isSafeInteger(sourceOffset + length)) {
      throw outOfRange(`runs[${i}]`, 'ending below 2 ** 53', `${offset}, ${length}, ${sourceOffset}`);
    }
    end = offset + length;
    out.push({ offset, length, sourceOffset });
  }
  return out;
}

/**
 * A custom source seen sparse: one read of the view becomes reads of the base for the runs it
 * crosses, zeros between them.
 */
function sparseSpec(base: CustomSpec, runs: readonly SparseRun[]): CustomSpec {
  const read: CustomRead = async (offset, length, options) => {
    const out = new Uint8Array(length);
    const end = offset + length;
    for (const r of runs) {
      const a = Math.max(offset, r.offset);
      const b = Math.min(end, r.offset + r.length);
      if (a >= b) continue;
      const got = await base.read(r.sourceOffset + a - r.offset, b - a, options);
      out.set(got instanceof Uint8Array ? got.subarray(0, b - a) : new Uint8Array(got, 0, b - a), a - offset);
    }
    return out;
  };
  return { ...base, read, size: sparseSize(runs), open: null, label: `${base.label} (sparse)` };
}
