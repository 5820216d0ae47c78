/**
 * The socket `criu restore --lazy-pages` talks to (criu/uffd.c, seen with strace on CRIU 4.1.1):
 * it connects once to `lazy-pages.socket` in the daemon's work directory and sends, per
 * restored task, its pid as a 32-bit little-endian integer (negative: a zombie, nothing
 * follows) and then one byte carrying the task's userfaultfd (SCM_RIGHTS); at the end of the
 * restore the four bytes "FTSR" (0x52535446), then it closes. Nothing is sent back.
 *
 * The bytes are received on the native fd-passing thread (native/fdpass), which hands each
 * recvmsg(2) to JavaScript with the fds that came with it. The kernel ends a read after the
 * bytes that carry fds, so a task's fd arrives with the last byte of its read: that byte must
 * be the task's one-byte message.
 */
import { EventEmitter } from 'events';
import * as fs from 'fs';
import { binding, NativeFdListener, NativeListenEvent } from '../base/native';
import type { PeerCredentials } from './fdpass';
import { CriuError } from './criu-errors';

/** "FTSR": ReSTore Finished. */
export const RESTORE_FINISHED = 0x52535446;
/** The largest pid Linux hands out (PID_MAX_LIMIT). */
const PID_MAX = 4194304;

export interface LazyPagesSocketEvents {
  /** A restored task and its userfaultfd (fd owned by the receiver from now on). */
  task: [pid: number, fd: number, peer: PeerCredentials];
  /** A task restored as a zombie: no memory, no fd. */
  zombie: [pid: number];
  /** "FTSR": every task is restored and running. */
  finished: [];
  /** criu restore closed the connection (after "FTSR", or not: then 'error' came first). */
  end: [];
  /** The connection broke the protocol; the connection is dropped. */
  error: [CriuError];
}

/**
 * Listens at `path` (mode 0600: criu runs as root, as this daemon must) and reads the one
 * connection of criu restore. A second connection is refused (closed at once).
 */
export class LazyPagesSocket extends EventEmitter<LazyPagesSocketEvents> {
  private readonly handle: NativeFdListener;
  private conn = 0;
  private peer: PeerCredentials | null = null;
  private pending: Buffer = Buffer.alloc(0);
  /** Stream offset of pending[0]. */
  private at = 0;
  /** Fds received, with the stream offset of the byte they came with. */
  private fds: Array<{ at: number; fd: number }> = [];
  /** A pid was read; its fd byte is next. */
  private pid = 0;
  private finishedSeen = false;
  private closed = false;
  private unlinked = false;

  constructor(readonly path: string) {
    super();
    if (!binding) throw new CriuError('ERR_CRIU_SOCKET', 'the native addon is not available');
    try {
      // Unlinked even if something listens there, as criu lazy-pages' server_listen() does:
      // listenForUffd's probe (a connect) would be taken by a live CRIU daemon for criu restore.
      if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      // none
    }
    try {
      this.handle = new binding.FdListener(path, 16, 4096, (events) => this.onEvents(events), 0o600, 0x10000);
    } catch (e) {
      throw new CriuError('ERR_CRIU_SOCKET', `cannot listen at ${path}: ${(e as Error).message}`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close(); // closes the fds JavaScript has not taken
    this.unlink();
  }

  /** Removes the socket's path (close() does too): nothing connects any more. */
  unlink(): void {
    if (this.unlinked) return;
    this.unlinked = true;
    try {
      fs.unlinkSync(this.path);
    } catch {
      // gone already
    }
  }

  /** A task's fd was taken (Userfaultfd.fromFd duplicates it) or refused: closed now. */
  release(fd: number): void {
    if (!this.closed) this.handle.closeReceived([fd]);
  }

  ref(): this {
    this.handle.ref();
    return this;
  }

  unref(): this {
    this.handle.unref();
    return this;
  }

  private onEvents(events: NativeListenEvent[]): void {
    for (const e of events) {
      if (this.closed) {
        if (e.type === 'data' && e.fds.length > 0) this.handle.closeReceived(e.fds);
        continue;
      }
      if (e.type === 'accept') {
        if (this.conn !== 0) {
          this.handle.drop(e.conn); // criu restore connects once; anyone else is not it
          continue;
        }
        this.conn = e.conn;
        this.peer = { pid: e.pid, uid: e.uid, gid: e.gid };
      } else if (e.conn !== this.conn) {
        if (e.type === 'data' && e.fds.length > 0) this.handle.closeReceived(e.fds);
      } else if (e.type === 'data') {
        this.onData(e.data, e.fds);
      } else {
        this.onEnd(e.type === 'error' ? e.code : null);
      }
    }
  }

  private onData(data: Buffer, fds: number[]): void {
    const end = this.at + this.pending.length + data.length;
    for (const fd of fds) this.fds.push({ at: end - 1, fd });
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    try {
      this.parse();
    } catch (e) {
      this.fail(e as CriuError);
    }
  }

  private parse(): void {
    for (;;) {
      if (this.pid !== 0) {
        if (this.pending.length < 1) return;
        const byteAt = this.at;
        const i = this.fds.findIndex((f) => f.at === byteAt);
        if (i < 0) throw new CriuError('ERR_CRIU_PROTOCOL', `task ${this.pid}'s message came without a userfaultfd`);
        const fd = this.fds.splice(i, 1)[0].fd;
        const pid = this.pid;
        this.pid = 0;
        this.consume(1);
        this.emit('task', pid, fd, this.peer!);
        continue;
      }
      if (this.pending.length < 4) return;
      const value = this.pending.readInt32LE(0);
      if (this.fds.some((f) => f.at < this.at + 4)) {
        throw new CriuError('ERR_CRIU_PROTOCOL', 'a file descriptor came with a pid, not after it');
      }
      this.consume(4);
      if (this.finishedSeen) {
        throw new CriuError('ERR_CRIU_PROTOCOL', `a message (0x${(value >>> 0).toString(16)}) came after "FTSR"`);
      }
      if (value === RESTORE_FINISHED) {
        this.finishedSeen = true;
        this.emit('finished');
      } else if (value < 0 && value >= -PID_MAX) {
        this.emit('zombie', -value);
      } else if (value > 0 && value <= PID_MAX) {
        this.pid = value;
      } else {
        throw new CriuError('ERR_CRIU_PROTOCOL', `unknown message 0x${(value >>> 0).toString(16)}: neither a pid nor "FTSR"`);
      }
    }
  }

  private consume(n: number): void {
    this.pending = this.pending.subarray(n);
    this.at += n;
  }

  private onEnd(code: string | null): void {
    const conn = this.conn;
    this.conn = -1;
    if (code !== null) {
      this.fail(new CriuError('ERR_CRIU_PROTOCOL', `the connection from criu restore failed: ${code}`), conn);
    } else if (this.pending.length > 0 || this.pid !== 0) {
      this.fail(new CriuError('ERR_CRIU_PROTOCOL', 'criu restore closed the connection mid-message'), conn);
    } else if (!this.finishedSeen) {
      this.fail(new CriuError('ERR_CRIU_PROTOCOL', 'criu restore closed the connection before "FTSR": the restore failed'), conn);
    }
    this.emit('end');
  }

  private fail(err: CriuError, conn = this.conn): void {
    const fds = this.fds.map((f) => f.fd);
    this.fds = [];
    if (fds.length > 0) this.handle.closeReceived(fds);
    if (conn > 0) this.handle.drop(conn);
    this.conn = -1;
    this.pending = Buffer.alloc(0);
    this.pid = 0;
    this.emit('error', err);
  }
}
