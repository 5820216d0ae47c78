/**
 * Clones of a shared image in other processes (docs/shared-images.md, "Clones in other
 * processes"). One Unix stream connection, framed as sendUffd's messages (framing.ts):
 *  1. listener -> client: the image's read-only memfd, with {"sharedImage":1, size, pageSize, mode};
 *  2. the client maps it privately, opens a uffd and registers the mapping (MISSING, and MINOR
 *     for a 'minor' image);
 *  3. client -> listener: the uffd, with {"clone": {"start": "0x...", "length": size}};
 *  4. the listener checks it and serves it (uffd.serve(clone, image)), then answers
 *     {"serving": true} or {"error": {"code", "message"}}; the client's attach resolves or
 *     rejects with that.
 * The connection stays open while the clone lives: the listener stops serving it, and closes its
 * uffd, when the client closes it (clone.close(), or the process exits).
 *
 * The client keeps its own copy of the uffd open: should the listener go away, an untouched page
 * waits (as with any handler that died) instead of reading as zeros from an image nobody fills.
 */
import * as fs from 'fs';
import { toLength, toOptions } from '../base/args';
import { constants, FeatureName } from '../base/constants';
import { codedError, invalidArgType, outOfRange } from '../base/errors';
import { binding } from '../base/native';
import { checkOptionKeys, keysOf } from '../base/option-keys';
import type { Region } from '../core/region';
import type { Served } from '../core/serving';
import type { SharedImage } from '../core/shared-image';
import { Userfaultfd } from '../core/userfaultfd';
import { KernelRegion } from '../kernel/region';
import { frame } from './framing';

const MAX_MESSAGE = 64 * 1024;

export interface AttachOptions {
  /** The image size this client expects: another size is refused (ERR_UFFD_IMAGE_SIZE). */
  size?: number;
  /** Bounds each wait for the listener (connecting, the image, its answer). Default 10000 ms. */
  timeoutMs?: number;
  /** Userfaultfd.open()'s, for the clone's uffd. */
  userModeOnly?: boolean;
  features?: FeatureName[];
}

const ATTACH_OPTION_KEYS = keysOf<AttachOptions>({ size: true, timeoutMs: true, userModeOnly: true, features: true });

/** A clone of a shared image served by another process (attachSharedImage). */
export interface ImageClone {
  /** The image, mapped privately: read and write it as any Region. */
  readonly region: Region;
  /** This process's copy of the uffd the listener serves the clone with. */
  readonly uffd: Userfaultfd;
  readonly size: number;
  readonly mode: 'missing' | 'minor';
  /** Unmaps the clone and closes the connection: the listener stops serving it. Idempotent. */
  close(): void;
}

function requireBinding(): NonNullable<typeof binding> {
  if (!binding) throw codedError('ERR_UFFD_UNAVAILABLE', 'userfaultfd: shared image clones need the native backend (Linux)');
  return binding;
}

/**
 * Connects to a listener serving a shared image (listenForUffd(path, { image })), maps the image
 * it hands over privately, and has the listener serve it: resolves once it does.
 */
export async function attachSharedImage(socketPath: string, options: AttachOptions = {}): Promise<ImageClone> {
  const b = requireBinding();
  if (typeof socketPath !== 'string' || socketPath.length === 0 || socketPath.includes('\0')) {
    throw invalidArgType('socketPath', 'a non-empty string path', socketPath);
  }
  checkOptionKeys(options, ATTACH_OPTION_KEYS, 'attachSharedImage()');
  const o = toOptions<AttachOptions>(options, 'options');
  const expected = o.size === undefined ? undefined : toLength(o.size, 'options.size');
  const timeoutMs = o.timeoutMs ?? 10000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw outOfRange('options.timeoutMs', 'a positive integer', timeoutMs);
  }
  const hello = await b.receiveFdMessage(socketPath, timeoutMs, MAX_MESSAGE);
  let region: Region | null = null;
  let uffd: Userfaultfd | null = null;
  try {
    const image = readHello(hello.fd, hello.data, expected);
    region = KernelRegion.clone(hello.fd, image.size);
    b.closeFd(hello.fd); // the mapping holds the file
    hello.fd = -1;
    uffd = Userfaultfd.open({ backend: 'native', userModeOnly: o.userModeOnly, features: o.features });
    uffd.register(region, { missing: true, minor: image.mode === 'minor' });
    const clone = { start: `0x${region.address.toString(16)}`, length: image.size };
    b.sendOnSocket(hello.sock, uffd.fd, frame(Buffer.from(JSON.stringify({ clone }))));
    const answer = await b.receiveFdMessage(hello.sock, timeoutMs, MAX_MESSAGE);
    if (answer.fd >= 0) b.closeFd(answer.fd);
    readAnswer(answer.data);
    return attached(region, uffd, hello.sock, image);
  } catch (err) {
    region?.unmap();
    uffd?.close();
    if (hello.fd >= 0) b.closeFd(hello.fd);
    b.closeFd(hello.sock);
    throw err;
  }
}

function attached(region: Region, uffd: Userfaultfd, sock: number, image: Hello): ImageClone {
  let open = true;
  return {
    region, uffd, size: image.size, mode: image.mode,
    close() {
      if (!open) return;
      open = false;
      region.unmap();
      binding!.closeFd(sock);
      uffd.close();
    },
  };
}

interface Hello { size: number; mode: 'missing' | 'minor' }

/** The listener's first message: the image's fd and what it is. */
function readHello(fd: number, data: Buffer, expected: number | undefined): Hello {
  const h = parse(data) as { sharedImage?: unknown; size?: unknown; pageSize?: unknown; mode?: unknown; error?: unknown };
  if (h.error !== undefined) readAnswer(data); // the listener refused at once (a closed image)
  if (fd < 0) throw codedError('ERR_UFFD_NO_FD', 'the listener sent no image fd: is it listening with { image }?');
  if (h.sharedImage !== 1 || !Number.isSafeInteger(h.size) || (h.mode !== 'missing' && h.mode !== 'minor')) {
    throw codedError('ERR_UFFD_IMAGE_HANDSHAKE', 'the listener\'s first message does not describe a shared image');
  }
  const size = h.size as number;
  if (h.pageSize !== constants.pageSize) {
    throw codedError('ERR_UFFD_IMAGE_SIZE', `the image has ${String(h.pageSize)}-byte pages, this process ${constants.pageSize}-byte ones`);
  }
  if (expected !== undefined && size !== expected) {
    throw codedError('ERR_UFFD_IMAGE_SIZE', `the image is ${size} bytes, not the ${expected} bytes expected (options.size)`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.size !== size || size === 0 || size % constants.pageSize !== 0) {
    throw codedError('ERR_UFFD_IMAGE_SIZE', `the fd received is not an image of ${size} bytes (a file of ${st.size})`);
  }
  return { size, mode: h.mode as 'missing' | 'minor' };
}

/** The listener's answer to the uffd: serving, or a coded refusal. */
function readAnswer(data: Buffer): void {
  const a = parse(data) as { serving?: unknown; error?: { code?: unknown; message?: unknown } };
  if (a.serving === true) return;
  const code = typeof a.error?.code === 'string' ? a.error.code : 'ERR_UFFD_IMAGE_HANDSHAKE';
  const message = typeof a.error?.message === 'string' ? a.error.message : 'the listener did not serve the clone';
  throw codedError(code, `the listener refused the clone: ${message}`);
}

// ---- the listener's side (lib/tools/fdpass.ts) ------------------------------------------------

/** The image's fd and the message it goes with, for a client that just connected; throws when closed. */
export function handOverImage(image: SharedImage): { fd: number; message: Buffer } {
  const fd = image.fd;
  if (image.closed || fd < 0) {
    throw codedError(image.closed ? 'ERR_UFFD_IMAGE_CLOSED' : 'ERR_UFFD_IMAGE_FD',
      image.closed ? 'the shared image is closed' : 'the image has no read-only fd to hand over (/proc could not reopen its memfd)');
  }
  const hello = { sharedImage: 1, size: image.size, pageSize: image.pageSize, mode: image.mode };
  return { fd, message: frame(Buffer.from(JSON.stringify(hello))) };
}

/** Serves the clone a client's payload describes on its uffd; throws a coded error when it cannot. */
export function serveClone(image: SharedImage, uffd: Userfaultfd, payload: Buffer): { clone: { start: bigint; length: number }; served: Served } {
  const p = parse(payload) as { clone?: { start?: unknown; length?: unknown } };
  const start = p.clone?.start;
  const length = p.clone?.length;
  if (typeof start !== 'string' || !/^0x[0-9a-f]+$/.test(start) || !Number.isSafeInteger(length)) {
    throw codedError('ERR_UFFD_IMAGE_HANDSHAKE', 'the client\'s message does not describe its clone ({ clone: { start, length } })');
  }
  const clone = { start: BigInt(start), length: length as number };
  return { clone, served: uffd.serve(clone, image) };
}

/** A handshake message's JSON object; {} for anything else. */
function parse(data: Buffer): object {
  try {
    const v: unknown = JSON.parse(data.toString('utf8'));
    return v !== null && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

/** The listener's answer after serveClone (or instead of the image, when it cannot hand it over). */
export function cloneAnswer(err?: Error & { code?: string }): Buffer {
  const body = err === undefined ? { serving: true } : { error: { code: err.code ?? 'EIO', message: err.message } };
  return frame(Buffer.from(JSON.stringify(body)));
}
