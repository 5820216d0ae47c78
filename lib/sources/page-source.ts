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

const FILE_OPTION_KEYS = keysOf<FileSourceOptions>({ offset: true, mode: true });

export class PageSource {
  private constructor(
    readonly kind: PageSourceKind,
    readonly bytes: Uint8Array | null,
    readonly file: string | number | null,
    readonly offset: number,
    readonly mode: 'mmap' | 'pread',
    /** PageSource.custom and PageSource.http: answered in JavaScript (lib/sources/custom-source.ts). */
    readonly custom: CustomSpec | null = null,
  ) {}

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
   * The source's size (and, for http, the ETag it pinned), learned now rather than at the first
   * fault: a bad URL or credential fails here. Optional; serve() does not need it. One attempt,
   * bounded by the source's `timeoutMs` (ERR_UFFD_SOURCE_TIMEOUT).
   */
  async ready(): Promise<SourceInfo> {
    const c = this.custom;
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
