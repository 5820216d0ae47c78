/**
 * Live snapshot: a point-in-time image of a range, written while other threads keep writing.
 * The range is write-protected at once; pages are streamed out; a write to a page not yet saved
 * waits (a synchronous WP fault) until it is saved. This file holds the policy both backends
 * share: the destination, and registering the range for WP and restoring it afterwards.
 */
import * as fs from 'fs';
import { codedError, invalidArgType, outOfRange, uffdError } from '../base/errors';

export interface SnapshotResult {
  /** Bytes of image written (the range's length). */
  bytes: number;
  /** Pages a writer touched before the stream reached them: saved first, then released. */
  savedBeforeWrite: number;
  /** How long the writers were held per WP fault, from the fault's read to its release (ns). */
  stallNs: { p50: number; p99: number };
}

/** What a backend's snapshot reports. */
export interface RawSnapshotResult {
  bytes: number;
  savedBeforeWrite: number;
  p50: number;
  p99: number;
}

const { O_WRONLY, O_CREAT, O_TRUNC } = fs.constants;
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

function isPipeOrSocket(st: fs.Stats | null): boolean {
  return st !== null && (st.isFIFO() || st.isSocket());
}

function notSeekable(what: string): Error {
  return uffdError('ESPIPE', 'lseek', undefined, `the snapshot destination ${what} must be a seekable file, not a pipe or a socket`);
}

/**
 * The destination as an fd, and how to let go of it. A path is opened with O_NONBLOCK: a FIFO
 * with no reader would hold a thread-pool thread in open(2) forever (and the process with it);
 * non-blocking, it fails at once (ENXIO), and one with a reader opens and is refused by type.
 */
export async function openDestination(dest: unknown): Promise<{ fd: number; close: () => Promise<void> }> {
  if (typeof dest === 'string') {
    let h: fs.promises.FileHandle;
    try {
      h = await fs.promises.open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, 0o666);
    } catch (e) {
      // ENXIO: a FIFO with no reader, or a socket (or a device with no driver: its own error).
      if ((e as NodeJS.ErrnoException).code === 'ENXIO' && isPipeOrSocket(await fs.promises.stat(dest).catch(() => null))) {
        throw notSeekable(dest);
      }
      throw e;
    }
    if (isPipeOrSocket(await h.stat())) {
      await h.close();
      throw notSeekable(dest);
    }
    return { fd: h.fd, close: () => h.close() };
  }
  if (typeof dest === 'number') {
    if (!Number.isInteger(dest) || dest < 0) throw outOfRange('dest', 'a non-negative integer fd', dest);
    let st: fs.Stats;
    try {
      st = fs.fstatSync(dest);
    } catch {
      throw uffdError('EBADF', 'fstat', undefined, `the snapshot destination fd ${dest} is not open`);
    }
    // Pages are written at their offsets, out of order: a pipe or a socket cannot take that.
    if (isPipeOrSocket(st)) throw notSeekable(`fd ${dest}`);
    return { fd: dest, close: async () => undefined };
  }
  throw invalidArgType('dest', 'a file path (string) or an fd (number)', dest);
}

export function wpAsyncError(): Error {
  return codedError('ERR_UFFD_WP_ASYNC', 'snapshot() needs synchronous write-protect faults; this uffd was opened ' +
    'with WP_ASYNC, whose write faults the kernel resolves by itself. Use a uffd with default features.');
}

export function busyError(start: bigint): Error {
  return codedError('ERR_UFFD_SNAPSHOT_BUSY', `a snapshot of a range overlapping 0x${start.toString(16)} is already being written`);
}

export function toResult(r: RawSnapshotResult): SnapshotResult {
  return { bytes: r.bytes, savedBeforeWrite: r.savedBeforeWrite, stallNs: { p50: r.p50, p99: r.p99 } };
}
