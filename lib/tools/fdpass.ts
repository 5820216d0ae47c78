/**
 * Handing a userfaultfd to another process: SCM_RIGHTS over a Unix stream socket.
 *
 * `sendUffd(path, uffd, payload)` connects and sends the payload with the fd in one sendmsg.
 * `listenForUffd(path)` is an async iterator of what arrives, one item per connection. The
 * blocking accept/recvmsg run on a native thread (native/fdpass/fdpass.cc); this file frames the
 * bytes and checks each connection.
 *
 * Framing. A payload sent by `sendUffd` starts with an 8-byte header (0x00 'U' 'F' 'D', then
 * the payload length, u32 little-endian), so that a peer hanging up mid-message is seen as
 * such. A payload without the header (its first byte is not 0) is "raw": it is exactly the
 * bytes that arrived with the fd in one recvmsg(2), as Firecracker sends its JSON body and as
 * its example handlers read it. Either way the fd must come with the payload's bytes.
 *
 * Access. The socket file is created with `mode` (0o600: only our uid can connect), and a peer
 * whose uid (SO_PEERCRED) is neither ours nor in `allowUids` is refused (ERR_UFFD_PEER_UID).
 *
 * Bounds. A connection holds at most one fd (the native thread closes any other as it arrives)
 * and at most `maxPayload` + 8 bytes; accept(2) failing (EMFILE) pauses accepting, reported once.
 * See docs/fd-passing-security.md.
 *
 * Errors. A connection that fails (no fd, payload over `maxPayload`, hang-up mid-message, an
 * fd that is not a userfaultfd, no whole message within `messageTimeoutMs`, a refused uid, a
 * socket error) yields nothing: the error goes to
 * `options.onError` and to the listener's 'connectionError' event, `listener.errors` counts
 * it, the connection is closed, and the listener keeps serving the others.
 *
 * About 500 lines as one cohesive thing: both ends of one wire format (the header, the bounds,
 * the error codes), which a reader checks side by side; most of it is this comment and the
 * option docs the API reference is generated from.
 */
/* eslint max-lines: ["error", 520] -- one cohesive thing: the header says why */
import { EventEmitter } from 'events';
import * as fs from 'fs';
import { toBytes, toOptions } from '../base/args';
import { checkOptionKeys, keysOf } from '../base/option-keys';
import type { FeatureName } from '../base/constants';
import { closedError, codedError, invalidArgType, outOfRange } from '../base/errors';
import { binding, NativeFdListener, NativeListenEvent } from '../base/native';
import type { SelfFaultPolicy } from '../base/types';
import { Userfaultfd } from '../core/userfaultfd';

const MAGIC = [0x00, 0x55, 0x46, 0x44]; // "\0UFD"
const HEADER = 8;
const DEFAULT_MAX_PAYLOAD = 64 * 1024;

/** The sending process, as the kernel saw it at connect(2) (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedUffd {
  /** The received userfaultfd (the listener closed its own copy of the fd). */
  uffd: Userfaultfd;
  payload: Buffer;
  peer: PeerCredentials;
  /** Resolves when the peer closes its end of the connection (or the listener closes). */
  peerClosed: Promise<void>;
}

export type FdPassErrorCode =
  | 'ERR_UFFD_NO_FD' | 'ERR_UFFD_PAYLOAD_TOO_LARGE' | 'ERR_UFFD_PEER_HANGUP'
  | 'ERR_UFFD_NOT_USERFAULTFD' | 'ERR_UFFD_BAD_HEADER' | 'ERR_UFFD_TIMEOUT' | 'ERR_UFFD_PEER_UID'
  | 'EMFILE' | (string & {});

/** A connection that delivered no userfaultfd. `code` says why; `peer` who it was. */
export interface FdPassError extends Error {
  code: FdPassErrorCode;
  peer?: PeerCredentials;
  /** Bytes received on the connection before it failed. */
  received?: number;
  errno?: number;
}

export interface SendOptions {
  /** 'length' (default): the 8-byte header first. 'raw': the payload alone (Firecracker style). */
  framing?: 'length' | 'raw';
  /** Bounds connect(2) and sendmsg(2) when the listener's backlog or buffer is full. Default 10000. */
  timeoutMs?: number;
}

const SEND_OPTION_KEYS = keysOf<SendOptions>({ framing: true, timeoutMs: true });

export interface ListenOptions {
  /** The largest payload accepted, in bytes. Default 65536. */
  maxPayload?: number;
  /** listen(2) backlog. Default 16. */
  backlog?: number;
  /** The features of the received uffds, used when /proc/self/fdinfo cannot be read. */
  features?: FeatureName[];
  /**
   * onSelfFault of the received uffds. It matters only for a uffd of this process's own memory
   * sent back to it: the threads faulting on another process's memory are never ours, so the
   * self-fault guard is off for those (docs/fd-passing-security.md).
   */
  onSelfFault?: SelfFaultPolicy;
  /** Called with each connection's error; the listener keeps serving. */
  onError?: (err: FdPassError) => void;
  /**
   * Remove a stale socket file at the path first (default true): a socket that nobody listens
   * on any more. A socket with a live listener is left alone (the listen then fails with
   * EADDRINUSE); checking sends that listener one connection that closes at once. Nothing else
   * is removed.
   */
  unlinkStale?: boolean;
  /**
   * A connection that has not delivered its whole message this long after connecting fails
   * with ERR_UFFD_TIMEOUT (default 30000; 0: never).
   */
  messageTimeoutMs?: number;
  /**
   * Raw framing only: bytes that arrive without a file descriptor are kept, and the connection
   * waits (up to messageTimeoutMs) for the fd to follow in a later message; the payload is then
   * every byte received up to and with the fd. Firecracker's own handlers retry for the fd in
   * this way. Default false: a raw message without an fd fails with ERR_UFFD_NO_FD.
   */
  awaitFd?: boolean;
  /**
   * The socket file's permission bits, set before the socket accepts anyone (default 0o600:
   * only this uid, and root, can connect; the umask does not apply).
   */
  mode?: number;
  /**
   * Uids allowed besides our own effective uid (SO_PEERCRED, at connect). Any other peer is
   * refused with ERR_UFFD_PEER_UID and closed before its fd is used. Default: none.
   */
  allowUids?: number[];
}

const LISTEN_OPTION_KEYS = keysOf<ListenOptions>({
  maxPayload: true, backlog: true, features: true, onSelfFault: true, onError: true, unlinkStale: true,
  messageTimeoutMs: true, awaitFd: true, mode: true, allowUids: true,
});

interface Connection {
  peer: PeerCredentials;
  chunks: Buffer[];
  received: number;
  fds: number[];
  done: boolean;
  closed?: () => void;
  timer?: NodeJS.Timeout;
}

function requireBinding(): NonNullable<typeof binding> {
  if (!binding) {
    throw codedError('ERR_UFFD_UNAVAILABLE', 'userfaultfd: fd passing needs the native backend (Linux)');
  }
  return binding;
}

function checkPath(socketPath: unknown): string {
  if (typeof socketPath !== 'string' || socketPath.length === 0 || socketPath.includes('\0')) {
    throw invalidArgType('socketPath', 'a non-empty string path', socketPath);
  }
  if (Buffer.byteLength(socketPath) > 107) {
    throw outOfRange('socketPath', 'at most 107 bytes long (sun_path)', socketPath);
  }
  return socketPath;
}

/**
 * Connects to the Unix socket at `socketPath` and sends `payload` with the userfaultfd's fd
 * attached (SCM_RIGHTS), in one sendmsg(2); then closes the connection. Synchronous: a local
 * socket takes the message at once unless its backlog is full (bounded by `timeoutMs`).
 * The sender's uffd stays open and usable; the receiver gets its own copy of the fd.
 */
export function sendUffd(socketPath: string, uffd: Userfaultfd | number, payload: Uint8Array | string = '',
                         options: SendOptions = {}): void {
  const b = requireBinding();
  checkPath(socketPath);
  let fd: number;
  if (typeof uffd === 'number') {
    if (!Number.isInteger(uffd) || uffd < 0) throw outOfRange('uffd', 'a non-negative integer fd', uffd);
    fd = uffd;
  } else if (uffd instanceof Userfaultfd) {
    if (uffd.closed) throw closedError('userfaultfd');
    if (uffd.backend !== 'native') throw invalidArgType('uffd', 'a Userfaultfd of the native backend', uffd);
    fd = uffd.fd;
  } else {
    throw invalidArgType('uffd', 'a Userfaultfd or a file descriptor', uffd);
  }
  const body = typeof payload === 'string' ? Buffer.from(payload) : toBytes(payload, 'payload');
  checkOptionKeys(options, SEND_OPTION_KEYS, 'sendUffd()');
  const o = toOptions<SendOptions>(options, 'options');
  const framing = o.framing ?? 'length';
  if (framing !== 'length' && framing !== 'raw') throw invalidArgType('options.framing', "'length' or 'raw'", framing);
  // Raw bytes go to sendmsg(2) as they are, and shared memory could change under it: the
  // length framing copies, raw does not.
  if (framing === 'raw' && body.buffer instanceof SharedArrayBuffer) {
    throw invalidArgType('payload', 'a Uint8Array over an ArrayBuffer with raw framing (not a SharedArrayBuffer)', payload);
  }
  const timeoutMs = o.timeoutMs ?? 10000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw outOfRange('options.timeoutMs', 'a positive integer', timeoutMs);
  let message: Uint8Array;
  if (framing === 'length') {
    const m = Buffer.alloc(HEADER + body.byteLength);
    m.set(MAGIC, 0);
    m.writeUInt32LE(body.byteLength, 4);
    m.set(body, HEADER);
    message = m;
  } else {
    if (body.byteLength === 0) throw outOfRange('payload', 'non-empty with raw framing (the fd travels with a byte)', 0);
    if (body[0] === 0) throw outOfRange('payload', 'not starting with a 0 byte with raw framing', 0);
    message = body;
  }
  b.sendFd(socketPath, fd, message, timeoutMs);
}

/** Starts listening at `socketPath`; iterate the result with `for await`. */
export function listenForUffd(socketPath: string, options: ListenOptions = {}): UffdListener {
  return new UffdListener(socketPath, options);
}

export class UffdListener extends EventEmitter implements AsyncIterableIterator<ReceivedUffd> {
  readonly path: string;
  /** Connections that failed (each reported through onError / 'connectionError'). */
  errors = 0;
  /** Userfaultfds received so far. */
  received = 0;
  private readonly handle: NativeFdListener;
  private readonly maxPayload: number;
  private readonly messageTimeoutMs: number;
  private readonly adoptOptions: { features?: FeatureName[]; onSelfFault?: SelfFaultPolicy; backend: 'native' };
  private readonly onError: ((err: FdPassError) => void) | undefined;
  private readonly awaitFd: boolean;
  private readonly allowUids: ReadonlySet<number>;
  private readonly conns = new Map<number, Connection>();
  private readonly queued: ReceivedUffd[] = [];
  private readonly waiting: Array<(r: IteratorResult<ReceivedUffd>) => void> = [];
  private isClosed = false;

  constructor(socketPath: string, options: ListenOptions = {}) {
    super();
    const b = requireBinding();
    this.path = checkPath(socketPath);
    checkOptionKeys(options, LISTEN_OPTION_KEYS, 'listenForUffd()');
    const o = toOptions<ListenOptions>(options, 'options');
    this.maxPayload = o.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    if (!Number.isInteger(this.maxPayload) || this.maxPayload < 1 || this.maxPayload > 64 * 1024 * 1024) {
      throw outOfRange('options.maxPayload', 'an integer from 1 to 64 MiB', this.maxPayload);
    }
    this.messageTimeoutMs = o.messageTimeoutMs ?? 30000;
    if (!Number.isInteger(this.messageTimeoutMs) || this.messageTimeoutMs < 0) {
      throw outOfRange('options.messageTimeoutMs', 'a non-negative integer', this.messageTimeoutMs);
    }
    const backlog = o.backlog ?? 16;
    if (!Number.isInteger(backlog) || backlog < 1) throw outOfRange('options.backlog', 'a positive integer', backlog);
    if (o.onError !== undefined && typeof o.onError !== 'function') throw invalidArgType('options.onError', 'a function', o.onError);
    this.onError = o.onError;
    if (o.awaitFd !== undefined && typeof o.awaitFd !== 'boolean') throw invalidArgType('options.awaitFd', 'of type boolean', o.awaitFd);
    this.awaitFd = o.awaitFd === true;
    this.adoptOptions = { backend: 'native' };
    if (o.features !== undefined) this.adoptOptions.features = o.features;
    if (o.onSelfFault !== undefined) this.adoptOptions.onSelfFault = o.onSelfFault;
    const mode = o.mode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw outOfRange('options.mode', 'an integer from 0 to 0o777', mode);
    this.allowUids = checkUids(o.allowUids);
    if (o.unlinkStale !== false) unlinkStaleSocket(b, socketPath);
    // One recvmsg reads up to a whole maximal message and one byte more: a raw payload that
    // fills it is too large.
    const readSize = Math.min(this.maxPayload + HEADER + 1, 1 << 20);
    this.handle = new b.FdListener(socketPath, backlog, readSize, (events) => this.onEvents(events), mode);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  next(): Promise<IteratorResult<ReceivedUffd>> {
    const item = this.queued.shift();
    if (item) return Promise.resolve({ value: item, done: false });
    if (this.isClosed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Ends the iteration (a `break` out of `for await`): closes the listener. */
  return(): Promise<IteratorResult<ReceivedUffd>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Keep the process alive while listening (the default). */
  ref(): this {
    if (!this.isClosed) this.handle.ref();
    return this;
  }

  /** Let the process exit even though the listener is open. */
  unref(): this {
    if (!this.isClosed) this.handle.unref();
    return this;
  }

  /**
   * Stops the thread, closes the socket and every pending connection, removes the socket
   * file, and ends the iteration. Received uffds not yet taken from the iterator are closed;
   * the ones already yielded belong to the caller. Idempotent.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.handle.close();
    for (const c of this.conns.values()) {
      clearTimeout(c.timer);
      this.closeReceived(c.fds);
      c.closed?.();
    }
    this.conns.clear();
    for (const item of this.queued.splice(0)) item.uffd.close();
    for (const w of this.waiting.splice(0)) w({ value: undefined, done: true });
    try {
      fs.unlinkSync(this.path);
    } catch {
      // gone already
    }
    process.nextTick(() => this.emit('close'));
  }

  // JS thread: a batch of reports from the listener thread.
  private onEvents(events: NativeListenEvent[]): void {
    for (const e of events) {
      if (this.isClosed) {
        if (e.type === 'data') this.closeReceived(e.fds);
        continue;
      }
      switch (e.type) {
        case 'accept': {
          const c: Connection = { peer: { pid: e.pid, uid: e.uid, gid: e.gid }, chunks: [], received: 0, fds: [], done: false };
          if (this.messageTimeoutMs > 0) {
            c.timer = setTimeout(() => {
              if (!c.done && this.conns.get(e.conn) === c) {
                this.fail(e.conn, c, 'ERR_UFFD_TIMEOUT', `no whole message within ${this.messageTimeoutMs} ms`);
              }
            }, this.messageTimeoutMs).unref();
          }
          this.conns.set(e.conn, c);
          if (!this.peerAllowed(c.peer.uid)) {
            this.fail(e.conn, c, 'ERR_UFFD_PEER_UID', `uid ${c.peer.uid} is neither ours nor in allowUids`);
          }
          break;
        }
        case 'data':
          this.onData(e.conn, e.data, e.fds);
          break;
        case 'end':
        case 'error':
          this.onEnd(e);
          break;
      }
    }
  }

  private onData(id: number, data: Buffer, fds: number[]): void {
    const c = this.conns.get(id);
    if (!c || c.done) {
      this.closeReceived(fds);
      return;
    }
    // One fd a connection (the native thread already closes the rest; this is the backstop).
    if (c.fds.length > 0) this.closeReceived(fds);
    else c.fds.push(...fds);
    c.chunks.push(data);
    c.received += data.length;
    const buf = c.chunks.length === 1 ? c.chunks[0] : Buffer.concat(c.chunks);
    c.chunks = [buf];
    if (buf[0] !== 0) {
      // Raw: the bytes that came with the first recvmsg are the message.
      if (buf.length > this.maxPayload) {
        this.fail(id, c, 'ERR_UFFD_PAYLOAD_TOO_LARGE', `a raw payload over maxPayload (${this.maxPayload} bytes) arrived`);
        return;
      }
      if (this.awaitFd && c.fds.length === 0) return;
      this.complete(id, c, buf);
      return;
    }
    if (buf.length < HEADER) return;
    if (buf[1] !== MAGIC[1] || buf[2] !== MAGIC[2] || buf[3] !== MAGIC[3]) {
      this.fail(id, c, 'ERR_UFFD_BAD_HEADER', 'the message starts with a 0 byte but not with the \\0UFD header');
      return;
    }
    const length = buf.readUInt32LE(4);
    if (length > this.maxPayload) {
      this.fail(id, c, 'ERR_UFFD_PAYLOAD_TOO_LARGE', `the payload is ${length} bytes, over maxPayload (${this.maxPayload})`);
      return;
    }
    if (buf.length >= HEADER + length) this.complete(id, c, Buffer.from(buf.subarray(HEADER, HEADER + length)));
  }

  private peerAllowed(uid: number): boolean {
    return uid === process.geteuid?.() || this.allowUids.has(uid);
  }

  private onEnd(e: NativeListenEvent & { type: 'end' | 'error' }): void {
    if (e.conn === 0) {
      // The listening socket itself failed (accept or poll): reported once, the thread went on
      // (after accept fails it pauses accepting and retries as fds free up).
      const code = (e as { code?: string }).code ?? 'EIO';
      this.report(Object.assign(new Error(`userfaultfd listener at ${this.path}: accepting paused by ${code}; ` +
        'it resumes when a connection closes or after a back-off'), { code, errno: (e as { errno?: number }).errno }) as FdPassError);
      return;
    }
    const c = this.conns.get(e.conn);
    if (!c) return;
    this.conns.delete(e.conn);
    clearTimeout(c.timer);
    if (c.done) {
      c.closed?.();
      return;
    }
    this.closeReceived(c.fds);
    c.fds = [];
    if (e.type === 'error') {
      this.report(makeError(e.code, `the connection failed before a userfaultfd arrived: ${e.code}`, c, e.errno));
    } else {
      const what = c.received === 0 ? 'before sending anything' : `after ${c.received} bytes, mid-message`;
      this.report(makeError('ERR_UFFD_PEER_HANGUP', `the peer hung up ${what}`, c));
    }
  }

  private complete(id: number, c: Connection, payload: Buffer): void {
    c.done = true;
    clearTimeout(c.timer);
    c.chunks = [];
    const fds = c.fds;
    c.fds = [];
    if (fds.length === 0) {
      this.handle.drop(id);
      this.conns.delete(id);
      this.report(makeError('ERR_UFFD_NO_FD', `a ${payload.length}-byte message arrived without a file descriptor`, c));
      return;
    }
    let uffd: Userfaultfd;
    try {
      uffd = Userfaultfd.fromFd(fds[0], this.adoptOptions);
    } catch (err) {
      this.closeReceived(fds);
      this.handle.drop(id);
      this.conns.delete(id);
      const code = (err as { code?: string }).code === 'ERR_INVALID_ARG_TYPE' ? 'ERR_UFFD_NOT_USERFAULTFD' : (err as { code?: string }).code ?? 'EIO';
      this.report(makeError(code, `the received fd is not a usable userfaultfd: ${(err as Error).message}`, c));
      return;
    }
    this.closeReceived(fds); // fromFd duplicated the first; extra fds are not ours to keep
    this.handle.release(id);
    const peerClosed = new Promise<void>((resolve) => {
      c.closed = resolve;
    });
    this.received++;
    const item: ReceivedUffd = { uffd, payload, peer: c.peer, peerClosed };
    const w = this.waiting.shift();
    if (w) w({ value: item, done: false });
    else this.queued.push(item);
  }

  private fail(id: number, c: Connection, code: FdPassErrorCode, message: string): void {
    c.done = true;
    clearTimeout(c.timer);
    this.closeReceived(c.fds);
    c.fds = [];
    this.handle.drop(id);
    this.conns.delete(id);
    this.report(makeError(code, message, c));
  }

  // Received fds are closed by the listener, which closes the ones JS still holds when it
  // closes (a Worker terminated mid-message cannot run JS to close them).
  private closeReceived(fds: number[]): void {
    if (fds.length > 0) this.handle.closeReceived(fds);
  }

  private report(err: FdPassError): void {
    this.errors++;
    if (this.onError) {
      try {
        this.onError(err);
      } catch (e) {
        process.nextTick(() => {
          throw e;
        });
      }
    }
    this.emit('connectionError', err);
  }
}

function makeError(code: string, message: string, c: Connection, errno?: number): FdPassError {
  const e = new Error(`${message} (peer pid ${c.peer.pid}, uid ${c.peer.uid})`) as FdPassError;
  e.code = code;
  e.peer = c.peer;
  e.received = c.received;
  if (errno !== undefined) e.errno = errno;
  return e;
}

function checkUids(uids: unknown): ReadonlySet<number> {
  if (uids === undefined) return new Set();
  if (!Array.isArray(uids)) throw invalidArgType('options.allowUids', 'an array of uids', uids);
  for (const u of uids) {
    if (!Number.isInteger(u) || u < 0 || u > 0xffffffff) throw outOfRange('options.allowUids', 'uids (integers from 0 to 2^32 - 1)', u);
  }
  return new Set(uids as number[]);
}

function unlinkStaleSocket(b: { socketListening(path: string): boolean }, socketPath: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  // Unlinking a live listener's socket would silently cut it off from new peers.
  if (st.isSocket() && !b.socketListening(socketPath)) fs.unlinkSync(socketPath);
}
