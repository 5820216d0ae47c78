/**
 * The files this package reads and writes on a caller's behalf (working sets, records), opened
 * so that a hostile path cannot hang, bloat or redirect them: what is read must be a regular
 * file of bounded size, checked on the open fd before a byte is read; what is written goes to an
 * exclusively created temporary file with an unguessable name, renamed over the target.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import { uffdError } from './errors';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
// Absent from the table on Windows, where neither hazard exists.
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

/**
 * The whole of the regular file at `path`, at most `maxBytes` of it. O_NONBLOCK: a FIFO would
 * block open(2) forever. Anything but a regular file (a FIFO, a socket, a device such as
 * /dev/zero, which never ends) is a UffdError EINVAL (syscall 'open'); a file larger than
 * `maxBytes` is `tooLarge(size)`; a missing file is Node's own ENOENT error.
 */
export function readRegularFile(path: string, maxBytes: number, tooLarge: (size: number) => Error): Buffer {
  const fd = fs.openSync(path, O_RDONLY | O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw uffdError('EINVAL', 'open', undefined, `${path} is not a regular file`);
    if (st.size > maxBytes) throw tooLarge(st.size);
    // A file that grows after fstat is read up to the size checked, never past it.
    const b = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < b.length) {
      const n = fs.readSync(fd, b, got, b.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return got === b.length ? b : b.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `path` whole or not at all. The temporary file beside it has a random name
 * and is created with O_EXCL | O_NOFOLLOW, so a file or symlink planted under a predictable
 * name (`<path>.<pid>.tmp`) is never written through; rename(2) then replaces `path` itself
 * (a symlink there is replaced, not followed).
 */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${crypto.randomBytes(8).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
  try {
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
