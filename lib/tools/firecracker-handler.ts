/**
 * FirecrackerHandler (run by `npx userfaultfd firecracker-handler`: firecracker-cli.ts): a
 * page-fault handler for Firecracker snapshot restore, built on the public API (listenForUffd,
 * serve, PageSource.file). The handshake's mappings and the failure kinds: firecracker-mappings.ts.
 *
 * Firecracker connects to the socket and sends, in one SCM_RIGHTS message, its userfaultfd and
 * a JSON array of mappings { base_host_virt_addr, size, offset, page_size } (older releases:
 * page_size_kib, which holds bytes despite its name). Each mapping is served from the memory
 * file natively, on the uffd's reader thread. The connection stays open while the VM runs.
 *
 * A VM that cannot be served (a bad mapping, a missing memory file, a page size this handler
 * cannot serve, a source that fails) would hang forever on its first fault: its Firecracker
 * process is killed (the pid from SO_PEERCRED), as Firecracker's own handlers do, unless
 * `--on-error keep`. Either way one line is logged and the other VMs are served on.
 * See docs/firecracker.md.
 */
import * as fs from 'fs';
import { constants } from '../base/constants';
import { listenForUffd } from './fdpass';
import type { FdPassError, PeerCredentials, ReceivedUffd } from './fdpass';
import { PageSource } from '../sources/page-source';
import type { PageFault, RemoveEvent, ServeOptions } from '../base/types';
import { Userfaultfd } from '../core/userfaultfd';
import '../kernel';
import {
  classifyServeError, describeError, FailureKind, Mapping, parseBody, parseMappings, servablePageSizes, VmError,
} from './firecracker-mappings';

export type OnError = 'kill' | 'keep';

export interface HandlerOptions {
  socket: string;
  memoryFile: string;
  peers?: number;
  onError?: OnError;
  record?: string;
  prefetch?: string;
  /** Uids accepted besides ours (the jailer runs Firecracker as its own uid). */
  allowUids?: number[];
  /** One line per event of note (default: stderr, prefixed). */
  log?: (line: string) => void;
}

export interface VmSummary {
  pid: number;
  uid: number;
  /**
   * 'served': served until it went. 'killed': it could not be served and was killed.
   * 'kept': it could not be served and was left running (--on-error keep, or its pid is not
   * visible from here). 
   */
  status: 'served' | 'killed' | 'kept';
  error?: { kind: FailureKind; code: string; message: string };
  mappings: number;
  pageSize: number | null;
  faults: number;
  bytes: number;
  latencyNs: { p50: number; p99: number };
  removedPages: number;
  /** With --prefetch: pages the prefetch thread installed (not in `bytes`). */
  prefetchedPages?: number;
  /** With --record or --prefetch: faults on served pages that had to be answered on demand. */
  demandFaults?: number;
  /** With --record: the first working set that could not be saved, and why. */
  recordError?: { path: string; code: string; message: string };
}

/** false once the process is gone (or a zombie). */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** One VM: its uffd, the mappings served, and how it ends. */
class Vm {
  readonly summary: VmSummary;
  private mappings: Mapping[] = [];
  /** With --record: each recorded mapping's range and set file, saved when the VM goes. */
  private readonly recordings: Array<{ range: { start: bigint; length: number }; path: string }> = [];
  private connectionOpen = true;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private ended!: () => void;
  /** Resolves when the VM has gone and its summary is final. */
  readonly finished = new Promise<void>((resolve) => { this.ended = resolve; });

  constructor(private readonly handler: FirecrackerHandler, private readonly uffd: Userfaultfd,
              readonly peer: PeerCredentials, peerClosed: Promise<void>) {
    this.summary = {
      pid: peer.pid, uid: peer.uid, status: 'served', mappings: 0, pageSize: null,
      faults: 0, bytes: 0, latencyNs: { p50: 0, p99: 0 }, removedPages: 0,
    };
    // (before watchUntilGone's own then(): it reads connectionOpen)
    peerClosed.then(() => {
      this.connectionOpen = false;
    });
    this.watchUntilGone(peerClosed);
  }

  /** Serves its mappings; a VM that cannot be served fails (and is killed) here. */
  start(payload: Buffer): void {
    try {
      this.serve(payload);
    } catch (e) {
      const { code, syscall } = e as { code?: string; syscall?: string };
      if (syscall === 'UFFDIO_REGISTER' && (code === 'ENOMEM' || code === 'ESRCH') && !this.alive()) {
        // Its memory is gone (the kernel answers ENOMEM once the mm has no users): it left.
        this.handler.log(`vm pid ${this.peer.pid} went before it could be served`);
        this.finish();
        return;
      }
      this.fail(e instanceof VmError ? e : classifyServeError(e as Error, this.handler.memoryFile));
      return;
    }
    const total = this.mappings.reduce((n, m) => n + m.size, 0);
    this.handler.log(`vm pid ${this.peer.pid} uid ${this.peer.uid}: serving ${this.mappings.length} mapping(s), ` +
      `${total} bytes, ${this.summary.pageSize}-byte pages`);
  }

  private serve(payload: Buffer): void {
    const h = this.handler;
    let st: fs.Stats;
    try {
      st = fs.statSync(h.memoryFile);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new VmError('missing-file', `the memory file ${h.memoryFile} is missing`);
      throw new VmError('source', `the memory file ${h.memoryFile} cannot be read: ${code}`);
    }
    if (!st.isFile()) throw new VmError('source', `the memory file ${h.memoryFile} is not a regular file`);
    const memSize = st.size;
    this.mappings = parseMappings(parseBody(payload), memSize, h.servable);
    this.summary.mappings = this.mappings.length;
    this.summary.pageSize = this.mappings[0].pageSize;
    // Listeners first, so that no event the reader reads is without one. A fault read before
    // its mapping is served faults again once it is (serve() wakes it); only a fault outside
    // every mapping, or one its source could not answer, is left to answerFromFile.
    this.uffd.on('pagefault', (f: PageFault) => this.answerFromFile(f));
    this.uffd.on('remove', (e: RemoveEvent) => this.removed(e));
    this.uffd.on('error', (e: Error & { code?: string; fault?: PageFault }) => this.onUffdError(e));
    this.mappings.forEach((m, i) => this.serveMapping(m, i));
  }

  private serveMapping(m: Mapping, i: number): void {
    const h = this.handler;
    const range = { start: m.base, length: m.size };
    const source = (): PageSource => PageSource.file(h.memoryFile, { offset: m.offset });
    const opts: ServeOptions = { removed: 'zero', pageSize: m.pageSize };
    const sets = h.record !== undefined || h.prefetch !== undefined;
    if (sets && m.pageSize !== constants.pageSize) {
      // Working sets are kept in base pages.
      this.handler.log(`vm pid ${this.peer.pid}: mapping ${i}: ${m.pageSize}-byte pages: no working set recorded or prefetched`);
      this.uffd.serve(range, source(), opts);
      return;
    }
    if (h.record !== undefined) {
      opts.record = i === 0 ? h.record : `${h.record}.${i}`;
      this.recordings.push({ range, path: opts.record });
    }
    if (h.prefetch === undefined) {
      this.uffd.serve(range, source(), opts);
      return;
    }
    const prefetch = i === 0 ? h.prefetch : `${h.prefetch}.${i}`;
    try {
      this.uffd.serve(range, source(), { ...opts, prefetch });
    } catch (e) {
      // A working set is a hint: one that is missing or recorded for another image costs the
      // VM its prefetch, not its life.
      this.handler.log(`vm pid ${this.peer.pid}: mapping ${i}: working set ${prefetch} not used (${describeError(e as Error)}); served on demand`);
      this.uffd.serve(range, source(), opts);
    }
  }

  /** JS thread: a fault no mapping's serve() answered: outside them (the VM fails), or from the file. */
  private answerFromFile(f: PageFault): void {
    if (this.done) return;
    const m = this.mappings.find((x) => f.address >= x.base && f.address < x.base + BigInt(x.size));
    if (!m) {
      this.fail(new VmError('bad-mapping', `a fault at 0x${f.address.toString(16)} is outside its mappings`));
      return;
    }
    const page = f.address - (f.address % BigInt(m.pageSize));
    try {
      const buf = Buffer.alloc(m.pageSize);
      const fd = fs.openSync(this.handler.memoryFile, 'r');
      try {
        fs.readSync(fd, buf, 0, buf.length, m.offset + Number(page - m.base));
      } finally {
        fs.closeSync(fd);
      }
      this.uffd.copy(page, buf);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EEXIST') this.uffd.wake({ start: page, length: m.pageSize });
      else if (code === 'EAGAIN') setImmediate(() => this.answerFromFile(f));
      else if (code !== 'ESRCH') this.fail(new VmError('source', `a fault at 0x${page.toString(16)} could not be answered: ${describeError(e as Error)}`));
    }
  }

  private alive(): boolean {
    return this.peer.pid > 0 ? isAlive(this.peer.pid) : this.connectionOpen;
  }

  private removed(e: RemoveEvent): void {
    const unit = BigInt(this.summary.pageSize ?? 4096);
    this.summary.removedPages += Number((e.end - e.start + unit - 1n) / unit);
  }

  /** A page source that failed on a fault, or the reader that stopped: the VM cannot go on. */
  private onUffdError(e: Error & { code?: string; fault?: PageFault }): void {
    if (this.done) return;
    const where = e.fault ? ` at 0x${e.fault.address.toString(16)}` : '';
    this.fail(new VmError('source', `a fault${where} could not be answered: ${describeError(e)}`));
  }

  /** The handler is going (SIGINT, SIGTERM): a VM still here would hang on its next fault. */
  abandon(): void {
    this.fail(new VmError('shutdown', 'the handler is exiting, and nothing would answer its next fault'));
  }

  /** Stops serving the VM and, by --on-error, kills it. Logs one line. */
  fail(err: VmError): void {
    if (this.done) return;
    this.summary.error = { kind: err.kind, code: err.code, message: err.message };
    let outcome: string;
    if (this.handler.onError === 'keep') {
      this.summary.status = 'kept';
      outcome = 'left running (--on-error keep)';
    } else if (this.peer.pid <= 0) {
      this.summary.status = 'kept';
      outcome = 'not killed: its pid is not visible from this pid namespace';
    } else if (!this.connectionOpen) {
      // Its connection closed: the pid may belong to another process by now.
      this.summary.status = 'kept';
      outcome = 'not killed: its connection has closed';
    } else {
      try {
        process.kill(this.peer.pid, 'SIGKILL');
        this.summary.status = 'killed';
        outcome = 'killed (SIGKILL)';
      } catch (e) {
        this.summary.status = 'kept';
        outcome = `not killed: ${(e as { code?: string }).code}`;
      }
    }
    this.handler.log(`vm pid ${this.peer.pid}: ${err.code}: ${err.message}; ${outcome}`);
    this.finish();
  }

  /**
   * Waits until the peer has gone: with a pid, until its process has ended (a sender may hang
   * up and go on running); without one (another pid namespace), until its connection closes.
   */
  private watchUntilGone(peerClosed: Promise<void>): void {
    const check = (): void => {
      if (this.done || this.alive()) return;
      clearInterval(timer);
      // setImmediate: events the reader read before the peer went are delivered first.
      setImmediate(() => this.finish());
    };
    const timer = setInterval(check, 100);
    this.timer = timer;
    peerClosed.then(check);
  }

  /**
   * Saves each recorded set here, not by close(): close() would report a failure as an 'error'
   * event after this VM is done, and a set that was not saved must be logged, with its code,
   * and fail the exit status (a folder that does not exist, a full disk).
   */
  private saveRecordings(): void {
    for (const { range, path } of this.recordings) {
      try {
        this.uffd.saveWorkingSet(range, path);
      } catch (e) {
        const err = e as Error & { code?: string };
        const code = typeof err.code === 'string' ? err.code : 'ERR_FC_RECORD';
        this.summary.recordError ??= { path, code, message: err.message };
        this.handler.log(`vm pid ${this.peer.pid}: working set ${path} not saved: ${code}: ${err.message}`);
      }
    }
  }

  /** The VM has gone or failed: its summary is taken and its uffd closed. Idempotent. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    clearInterval(this.timer);
    if (!this.uffd.closed) {
      const s = this.uffd.stats();
      Object.assign(this.summary, { faults: s.faults, bytes: s.bytes, latencyNs: { ...s.latencyNs } });
      if (this.handler.record !== undefined || this.handler.prefetch !== undefined) {
        if (s.prefetched !== undefined) this.summary.prefetchedPages = s.prefetched;
        if (s.demandFaults !== undefined) this.summary.demandFaults = s.demandFaults;
      }
      this.saveRecordings();
      this.uffd.close();
    }
    this.ended();
  }
}

/** Serves every VM that connects to the socket. */
export class FirecrackerHandler {
  readonly memoryFile: string;
  readonly onError: OnError;
  readonly record: string | undefined;
  readonly prefetch: string | undefined;
  readonly servable: number[];
  readonly vms: Vm[] = [];
  rejected = 0;
  private readonly socket: string;
  private readonly peers: number;
  private readonly allowUids: number[];
  private readonly logLine: (line: string) => void;
  private listener: ReturnType<typeof listenForUffd> | null = null;

  constructor(o: HandlerOptions) {
    this.socket = o.socket;
    this.memoryFile = o.memoryFile;
    this.peers = o.peers ?? 1;
    this.onError = o.onError ?? 'kill';
    this.record = o.record;
    this.prefetch = o.prefetch;
    this.allowUids = o.allowUids ?? [];
    this.logLine = o.log ?? ((line) => process.stderr.write(`firecracker-handler: ${line}\n`));
    this.servable = servablePageSizes(constants.pageSize);
  }

  log(line: string): void {
    this.logLine(line);
  }

  /** Serves until `peers` VMs have come and gone (or close()); resolves with their summaries. */
  async run(onVm?: (s: VmSummary) => void): Promise<VmSummary[]> {
    this.listener = listenForUffd(this.socket, {
      awaitFd: true,
      // Other uids must be able to connect(2) to reach the uid check at all.
      ...(this.allowUids.length > 0 ? { allowUids: this.allowUids, mode: 0o666 } : {}),
      onError: (err: FdPassError) => {
        this.rejected++;
        this.log(`connection rejected: ${err.code}: ${err.message}`);
      },
    });
    this.log(`pid ${process.pid} listening on ${this.socket}, serving ${this.memoryFile}`);
    const gone: Array<Promise<void>> = [];
    let active = 0;
    for await (const item of this.listener as AsyncIterable<ReceivedUffd>) {
      const vm = new Vm(this, item.uffd, item.peer, item.peerClosed);
      this.vms.push(vm);
      active++;
      gone.push(vm.finished.then(() => {
        onVm?.(vm.summary);
        if (vm.summary.status === 'served') this.log(`vm pid ${vm.peer.pid} has gone (${vm.summary.faults} faults)`);
        if (--active === 0 && this.vms.length >= this.peers) this.close();
      }));
      vm.start(item.payload);
    }
    await Promise.all(gone);
    return this.vms.map((v) => v.summary);
  }

  /**
   * Stops listening. A VM still here is failed as ERR_FC_SHUTDOWN: killed (or kept, by
   * --on-error), since no one would answer its next fault.
   */
  close(): void {
    this.listener?.close();
    for (const vm of this.vms) vm.abandon();
  }
}
