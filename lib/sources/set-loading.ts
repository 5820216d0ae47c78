/**
 * A working set loaded after serve() returns (prefetchMode 'background', issue 23): serve() only
 * opens the file and hands it to the backend, which reads and checks it off the JavaScript
 * thread (the native backend on its prefetch thread, native/sources/set_file.cc; the simulator
 * on a later turn of the event loop). Faults are answered from the source meanwhile, as without
 * a set, so the first byte comes as fast as lazy serving's. A file that is not a set for the
 * range becomes an 'error' event with the error decodeSet throws for it, and the range stays
 * served lazily.
 */
import * as fs from 'fs';
import { errnoName, uffdError } from '../base/errors';
import { openRegularFile, readOpenFile } from '../base/files';
import {
  CORRUPT_WHY, corruptSet, decodeSet, LoadedSet, maxSetBytes, mismatchError, readSet, tooLargeSet, versionError,
  WorkingSetShape,
} from './working-set';
import { setPagesError, setPagesPath } from './set-pages';

/** A set file open for the backend, which reads it later. */
export interface SetFile {
  fd: number;
  path: string;
  shape: WorkingSetShape;
  /** The backend's report of a file it could not load: an 'error' event. */
  failed(err: Error): void;
}

/**
 * serve()'s `prefetch` set: opened for the backend to load (`later`: background mode) or read
 * now; neither without `prefetch`. A missing file is ENOENT, unless it is also the `record`
 * file (the first run of a record-and-prefetch loop).
 */
export function openOrReadSet(prefetch: string | undefined, record: string | undefined, shape: WorkingSetShape, later: boolean,
                              failed: (err: Error) => void): { loaded: LoadedSet | null; file: SetFile | null } {
  if (prefetch === undefined) return { loaded: null, file: null };
  const file = later ? openSet(prefetch, shape, failed) : null;
  const loaded = later ? null : readSet(prefetch, shape, false);
  if (loaded === null && file === null && prefetch !== record) throw uffdError('ENOENT', 'open', undefined, `working set ${prefetch}`);
  return { loaded, file };
}

/** A set a backend loaded, read again for refine() before it is saved over; null when it is not a set (reported then). */
export function readSetQuietly(path: string, shape: WorkingSetShape): LoadedSet | null {
  try {
    return readSet(path, shape);
  } catch {
    return null;
  }
}

/** The kernel backend's serve() options for a set it loads (native/uffd/userfaultfd.cc LoadLater). */
export function nativeSetOptions(file: SetFile | null, pagesFd: number | null): object {
  if (file === null) return {};
  const { pageSize, sourceSize, rangeLength } = file.shape;
  return {
    setFd: file.fd, shape: [pageSize, sourceSize, rangeLength],
    // The page file, checked on the prefetch thread once the set is in (native/sources/set_pages.cc).
    ...(pagesFd === null ? {} : { pagesLaterFd: pagesFd }),
    // On the next tick: an 'error' nobody listens to is thrown there, not into a native callback.
    onSetError: (...f: number[]) => process.nextTick(() => file.failed(setLoadError(f, file))),
  };
}

/**
 * The set at `path` opened for a later load; null when there is none. Not a regular file (a FIFO,
 * a device) is a UffdError EINVAL now, as readSet's. The caller closes the fd once it is handed over.
 */
export function openSet(path: string, shape: WorkingSetShape, failed: (err: Error) => void): SetFile | null {
  try {
    return { fd: openRegularFile(path).fd, path, shape, failed };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * The simulator's load: the bytes are read now (the fd is the caller's until serve() returns),
 * checked when `load` is called. `load` throws what readSet would have.
 */
export function readOpenSet(file: SetFile): () => LoadedSet {
  let bytes: Buffer;
  try {
    const max = maxSetBytes(file.shape);
    bytes = readOpenFile(file.fd, fs.fstatSync(file.fd).size, max, (size) => tooLargeSet(size, max, file.shape, file.path));
  } catch (e) {
    return () => {
      throw e;
    };
  }
  return () => decodeSet(bytes, file.shape, file.path);
}

/**
 * The native load's failure, [kind, reason, detail, a, b, c] (SetLoadFailure in
 * native/sources/set_file.h), as the error decodeSet throws for the same file; kind 5: the
 * set's page file was refused ([5, reason, a, b]: set-pages.ts setPagesError).
 */
export function setLoadError(f: number[], file: SetFile): Error {
  const [kind, reason, detail, a, b, c] = f;
  switch (kind) {
    case 1:
      return uffdError(errnoName(detail), 'read', undefined, `working set ${file.path}`);
    case 3:
      return versionError(detail, file.path);
    case 5: // the page file, checked once the set was loaded: reason is set-pages.ts PagesReason
      return setPagesError(reason, a, b, setPagesPath(file.path), file.shape.pageSize);
    case 4:
      return mismatchError({ pageSize: a, sourceSize: b, rangeLength: c }, file.shape, file.path) ??
        corruptSet('a shape that matches, reported as not', file.path);
    default:
      return corruptSet(CORRUPT_WHY[reason]?.(detail, a) ?? `reason ${reason}`, file.path);
  }
}
