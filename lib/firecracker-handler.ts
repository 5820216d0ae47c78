/**
 * `npx userfaultfd firecracker-handler <socket> <memory-file>`: a page-fault handler for
 * Firecracker snapshot restore, built on the public API (listenForUffd, serve, PageSource.file).
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
import { parseArgs } from 'util';
import { probe } from './backend';
import { constants, HUGE_PAGE_SIZE } from './constants';
import { listenForUffd } from './fdpass';
import type { FdPassError, PeerCredentials, ReceivedUffd } from './fdpass';
import { PageSource } from './page-source';
import type { PageFault, RemoveEvent, ServeOptions } from './types';
import { Userfaultfd } from './userfaultfd';
import './kernel';

export const USAGE = `usage: userfaultfd firecracker-handler <socket> <memory-file> [options]

  --peers N             exit once N VMs have come and gone (default 1)
  --on-error kill|keep  a VM that cannot be served is killed (default) or left running
  --record FILE         record each mapping's working set (mapping i > 0: FILE.i)
  --prefetch FILE       prefetch a recorded working set (mapping i > 0: FILE.i)
  --allow-uid UID       also accept VMs run as this uid (repeatable; the jailer's uid):
                        the socket is then created 0666, and other uids are refused
  --json                print one JSON line per VM and a JSON summary on stdout
`;

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

/** Why a VM could not be served. */
export type FailureKind = 'bad-mapping' | 'missing-file' | 'page-size' | 'source' | 'shutdown';

const FAILURE_CODES: Record<FailureKind, string> = {
  'bad-mapping': 'ERR_FC_BAD_MAPPING',
  'missing-file': 'ERR_FC_MISSING_FILE',
  'page-size': 'ERR_FC_PAGE_SIZE',
  source: 'ERR_FC_SOURCE',
  shutdown: 'ERR_FC_SHUTDOWN',
};

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
}

export interface Mapping {
  base: bigint;
  size: number;
  offset: number;
  pageSize: number;
}

class VmError extends Error {
  constructor(readonly kind: FailureKind, message: string) {
    super(message);
  }
  get code(): string {
    return FAILURE_CODES[this.kind];
  }
}

/** The byte offsets at which each top-level JSON value of `text` ends. */
function jsonValueEnds(text: string): number[] {
  const ends: number[] = [];
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
    } else if (ch === '[' || ch === '{') {
      depth++;
    } else if ((ch === ']' || ch === '}') && --depth === 0) {
      ends.push(i + 1);
    }
  }
  return ends;
}

/**
 * The mappings array of a handshake body. A body sent again with the fd (a retried send)
 * arrives after the first copy: the last whole JSON value counts.
 */
export function parseBody(payload: Buffer): unknown {
  const text = payload.toString('utf8').replace(/\0+$/, '').trim();
  try {
    return JSON.parse(text);
  } catch (e) {
    const ends = jsonValueEnds(text);
    const start = ends.length > 1 ? ends[ends.length - 2] : -1;
    if (start >= 0) {
      try {
        return JSON.parse(text.slice(start, ends[ends.length - 1]));
      } catch {
        // reported below
      }
    }
    throw new VmError('bad-mapping', `the body is not JSON (${(e as Error).message}): ${JSON.stringify(text.slice(0, 80))}`);
  }
}

/** Page sizes this machine can serve: the base page, and the default huge page (2 MiB over 4 KiB pages) where the kernel has hugetlb uffd. */
function servablePageSizes(basePage: number): number[] {
  const p = probe({ backend: 'native' });
  return p.features.includes('MISSING_HUGETLBFS') ? [basePage, HUGE_PAGE_SIZE] : [basePage];
}

/**
 * page_size, or the deprecated page_size_kib, which Firecracker filled with bytes: a value
 * that is a servable size in bytes is bytes; one that is only servable times 1024 is KiB.
 */
function mappingPageSize(m: Record<string, unknown>, where: string, servable: number[]): number {
  const raw = m.page_size !== undefined ? m.page_size : m.page_size_kib;
  if (raw === undefined) return servable[0]; // releases before page sizes were sent
  if (!Number.isSafeInteger(raw) || (raw as number) <= 0) {
    throw new VmError('bad-mapping', `${where}: page_size is not a positive integer (${JSON.stringify(raw)})`);
  }
  const v = raw as number;
  if (servable.includes(v)) return v;
  if (m.page_size === undefined && servable.includes(v * 1024)) return v * 1024;
  throw new VmError('page-size', `${where}: page size ${v} is not supported (this handler serves ${servable.join(' or ')}-byte pages)`);
}

/** The mappings of Firecracker's JSON body, checked against the memory file. Throws VmError. */
export function parseMappings(body: unknown, memSize: number, servable: number[]): Mapping[] {
  if (!Array.isArray(body) || body.length === 0) throw new VmError('bad-mapping', 'the body is not a non-empty array of mappings');
  const mappings = body.map((m: unknown, i: number) => {
    const where = `mapping ${i}`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new VmError('bad-mapping', `${where} is not an object`);
    const o = m as Record<string, unknown>;
    for (const name of ['base_host_virt_addr', 'size', 'offset']) {
      const v = o[name];
      if (!Number.isSafeInteger(v) || (v as number) < 0) {
        throw new VmError('bad-mapping', `${where}: ${name} is not a non-negative integer (${JSON.stringify(v)})`);
      }
    }
    const base = o.base_host_virt_addr as number;
    const size = o.size as number;
    const offset = o.offset as number;
    const pageSize = mappingPageSize(o, where, servable);
    if (size === 0 || size % pageSize !== 0 || base % pageSize !== 0) {
      throw new VmError('bad-mapping', `${where}: base_host_virt_addr and size must be multiples of its page size (${pageSize})`);
    }
    if (offset + size > memSize) {
      throw new VmError('bad-mapping', `${where}: offset + size (${offset + size}) is past the memory file (${memSize} bytes)`);
    }
    return { base: BigInt(base), size, offset, pageSize };
  });
  const sorted = [...mappings].sort((a, b) => (a.base < b.base ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1].base + BigInt(sorted[i - 1].size) > sorted[i].base) throw new VmError('bad-mapping', 'two mappings overlap');
  }
  return mappings;
}

/** `CODE message`, without saying the code twice (UffdError messages start with it). */
function describeError(e: Error & { code?: string }): string {
  return e.code === undefined || e.message.startsWith(e.code) ? e.message : `${e.code} ${e.message}`;
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

/** Why serve() failed, as the handler reports it. */
function classifyServeError(e: Error & { code?: string; syscall?: string }, memoryFile: string): VmError {
  if (e.code === 'ENOENT' && e.syscall === 'open') return new VmError('missing-file', `the memory file ${memoryFile} is missing`);
  if (e.syscall === 'UFFDIO_REGISTER' || e.code === 'ERR_OUT_OF_RANGE' || e.code === 'ERR_INVALID_ARG_TYPE') {
    return new VmError('bad-mapping', `its mappings cannot be served: ${describeError(e)}`);
  }
  return new VmError('source', `the memory file cannot be served: ${describeError(e)}`);
}

/** One VM: its uffd, the mappings served, and how it ends. */
class Vm {
  readonly summary: VmSummary;
  private mappings: Mapping[] = [];
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
    // its mapping is served (the first serve() starts the reader) is answered here, in JS.
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
    if (h.record !== undefined) opts.record = i === 0 ? h.record : `${h.record}.${i}`;
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

  /** JS thread: a fault read before its mapping was served, answered from the file. */
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
    const unit = BigInt(this.summary.pageSize ?? constants.pageSize);
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

function summaryLine(vms: VmSummary[], rejected: number): string {
  const sum = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
  const mib = (sum((v) => v.bytes) / (1 << 20)).toFixed(1);
  const failed = vms.filter((v) => v.status !== 'served').length;
  return `firecracker-handler: ${vms.length} peer(s), ${sum((v) => v.faults)} faults, ${mib} MiB served, ` +
    `${sum((v) => v.removedPages)} pages removed (zero on refault), ${failed} failed, ${rejected} connection(s) rejected\n`;
}

function vmLine(v: VmSummary): string {
  const what = v.status === 'served' ? 'served' : `${v.status} (${v.error?.code})`;
  return `  vm pid ${v.pid}: ${what}, ${v.faults} faults, ${v.bytes} bytes, p50 ${(v.latencyNs.p50 / 1000).toFixed(0)} us, ` +
    `p99 ${(v.latencyNs.p99 / 1000).toFixed(0)} us, ${v.removedPages} pages removed\n`;
}

/** Whether this build's serve() takes record/prefetch (the working-set feature). */
function hasWorkingSets(): boolean {
  return typeof (Userfaultfd.prototype as unknown as { saveWorkingSet?: unknown }).saveWorkingSet === 'function';
}

/** The command. Returns the exit status: 0 when every VM was served, 1 when one was not, 2 on usage. */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout,
                           err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        peers: { type: 'string', default: '1' },
        'on-error': { type: 'string', default: 'kill' },
        record: { type: 'string' },
        prefetch: { type: 'string' },
        'allow-uid': { type: 'string', multiple: true, default: [] },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    err.write(`userfaultfd firecracker-handler: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const peers = Number(values.peers);
  const onError = values['on-error'];
  const usage = (why: string): number => {
    err.write(`userfaultfd firecracker-handler: ${why}\n\n${USAGE}`);
    return 2;
  };
  if (positionals.length !== 2) return usage('expected <socket> and <memory-file>');
  if (!Number.isInteger(peers) || peers < 1) return usage(`--peers must be a positive integer (got ${values.peers})`);
  if (onError !== 'kill' && onError !== 'keep') return usage(`--on-error must be kill or keep (got ${onError})`);
  const allowUids = (values['allow-uid'] as string[]).map(Number);
  if (!allowUids.every((u) => Number.isInteger(u) && u >= 0)) return usage(`--allow-uid must be a uid (got ${values['allow-uid']})`);
  if ((values.record !== undefined || values.prefetch !== undefined) && !hasWorkingSets()) {
    err.write('userfaultfd firecracker-handler: ERR_UFFD_UNSUPPORTED: --record and --prefetch need working sets ' +
      '(serve({ record, prefetch })), which this build of userfaultfd does not have\n');
    return 2;
  }
  const p = probe({ backend: 'native' });
  if (!p.available) {
    err.write(`userfaultfd firecracker-handler: ERR_UFFD_UNAVAILABLE: the kernel backend is unavailable (${p.reason}); ` +
      'run `npx userfaultfd doctor`\n');
    return 1;
  }
  const [socket, memoryFile] = positionals;
  const handler = new FirecrackerHandler({ socket, memoryFile, peers, onError, record: values.record, prefetch: values.prefetch, allowUids,
    log: (line) => err.write(`firecracker-handler: ${line}\n`) });
  if (!fs.existsSync(memoryFile)) handler.log(`warning: the memory file ${memoryFile} does not exist (yet)`);
  const stop = (): void => handler.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let vms: VmSummary[];
  try {
    vms = await handler.run((v) => {
      if (values.json) out.write(JSON.stringify({ type: 'vm', ...v }) + '\n');
    });
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  const failed = vms.filter((v) => v.status !== 'served').length;
  if (values.json) {
    const total = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
    out.write(JSON.stringify({
      type: 'summary', vms: vms.length, failed, rejected: handler.rejected, faults: total((v) => v.faults),
      bytes: total((v) => v.bytes), removedPages: total((v) => v.removedPages),
    }) + '\n');
  } else {
    out.write(summaryLine(vms, handler.rejected));
    for (const v of vms) out.write(vmLine(v));
  }
  return failed === 0 ? 0 : 1;
}
