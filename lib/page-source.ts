/** Where served memory comes from. Answered natively (or by the simulator), no JS per fault. */
import { toBytes, toLength } from './args';
import { invalidArgType, outOfRange } from './errors';

export type PageSourceKind = 'zero' | 'buffer' | 'file';

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

export class PageSource {
  private constructor(
    readonly kind: PageSourceKind,
    readonly bytes: Uint8Array | null,
    readonly file: string | number | null,
    readonly offset: number,
    readonly mode: 'mmap' | 'pread',
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
    const offset = options.offset === undefined ? 0 : toLength(options.offset, 'options.offset', true);
    const mode = options.mode ?? 'pread';
    if (mode !== 'mmap' && mode !== 'pread') throw invalidArgType('options.mode', "'mmap' or 'pread'", mode);
    return new PageSource('file', null, pathOrFd, offset, mode);
  }
}
