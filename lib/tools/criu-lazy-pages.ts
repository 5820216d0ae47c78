/**
 * `npx userfaultfd criu-lazy-pages -D <images>`: a drop-in for `criu lazy-pages`, the daemon
 * that `criu restore --lazy-pages` hands each restored task's userfaultfd to (docs/criu.md).
 *
 * It reads the checkpoint's images first (criu-images.ts), then listens on lazy-pages.socket
 * in its work directory (criu-socket.ts). Each task that arrives is served from its images
 * natively (criu-task.ts), or, with the pages over HTTP, from JavaScript (criu-remote-task.ts).
 * When criu restore says "FTSR" (every task runs), the rest of the pages are pushed in the
 * background, demand faults first; once every task's pages are in (or the task exited), it
 * exits 0 at once, the summary printed (exitNow: the kernel closes the userfaultfds).
 *
 * Bad input ends it with a coded error (criu-errors.ts) and exit status 1, at once: images that
 * are missing or corrupt before it listens (criu restore then fails to connect, and nothing is
 * restored); a pid without images, a message it does not know, an fd that is not a userfaultfd
 * or lacks the events, pages that cannot be read, after. The tasks restored so far are then
 * killed (SIGKILL, with their descendants; restored-processes.ts says which pids qualify): once
 * this daemon exits, their userfaultfds close and every page not yet in would read as zeros, a
 * silent corruption, where waiting would hang them for ever.
 */
import * as path from 'path';
import { probe } from '../core/backend';
import { constants } from '../base/constants';
import { Userfaultfd } from '../core/userfaultfd';
import '../kernel';
import { describeError } from '../base/errors';
import { parseCommandLine, reportUsageError, UsageError } from './cli-errors';
import { asCriuError, CriuError } from './criu-errors';
import { CriuImages, imageStore, ImageStore, loadImages, TaskImages } from './criu-images';
import { LazyPagesSocket } from './criu-socket';
import { NativeTask, ServedTask, TaskSummary } from './criu-task';
import { adoptTask, NEEDED, rehearse } from './criu-arrival';
import { RemoteTask } from './criu-remote-task';
import type { PeerCredentials } from './fdpass';
import { killRestored, pinRestored, RestoredProcess } from './restored-processes';
import { USAGE } from './criu-usage';
import { announceReady, fileLog, runInBackground, toStatusFd, withoutVerbosity } from './criu-daemon-mode';


export interface DaemonOptions {
  imagesDir: string;
  workDir?: string;
  pagesUrls?: string[];
  record?: string;
  prefetch?: string;
  log?: (line: string) => void;
}

export interface DaemonResult {
  /** 0: every task served; 1: the daemon failed (error says why). */
  status: number;
  error?: CriuError;
  tasks: TaskSummary[];
  zombies: number;
  /** What became of the restored processes when it failed, pid -> what happened. */
  killed: Record<number, string>;
}

export class CriuLazyPages {
  private readonly store: ImageStore;
  private readonly log: (line: string) => void;
  private images: CriuImages | null = null;
  private socket: LazyPagesSocket | null = null;
  private readonly tasks: ServedTask[] = [];
  private readonly processes: RestoredProcess[] = [];
  private readonly unpinned: number[] = [];
  /** "pid N: serving ..." lines, logged at "FTSR" or at a failure: see onTask. */
  private served: string[] = [];
  private zombies = 0;
  private finished = false;
  private ended = false;
  private settled = false;
  private resolve!: (r: DaemonResult) => void;
  /**
   * Settles once every task's pages are in (its uffds and the socket are closed just after, in a
   * setImmediate; with --record, first), or once it failed (closed first, the restored
   * processes killed).
   */
  readonly result = new Promise<DaemonResult>((resolve) => { this.resolve = resolve; });

  constructor(private readonly options: DaemonOptions) {
    this.store = imageStore(options.imagesDir, options.pagesUrls);
    this.log = options.log ?? ((line) => process.stderr.write(`criu-lazy-pages: ${line}\n`));
  }

  /** start() made the socket and it has not failed since: criu restore can connect. */
  get listening(): boolean {
    return this.socket !== null && !this.settled;
  }

  /** Reads the images, then listens. Resolves `result` when it is done, either way. */
  async start(): Promise<void> {
    try {
      this.images = await loadImages(this.store, constants.pageSize);
    } catch (e) {
      this.fail(asCriuError(e));
      return;
    }
    const local = [...this.images.pages.values()].find((p) => p.source.custom === null && p.size > 0);
    if (local !== undefined) {
      try {
        await rehearse(local.source, constants.pageSize);
      } catch (e) {
        this.log(`warm-up failed (${describeError(e as Error)}); serving on`);
      }
    }
    const sock = path.join(this.options.workDir ?? this.options.imagesDir, 'lazy-pages.socket');
    try {
      this.socket = new LazyPagesSocket(sock);
    } catch (e) {
      this.fail(asCriuError(e));
      return;
    }
    const pages = [...this.images.tasks.values()].reduce((n, t) => n + t.lazyPages, 0);
    this.log(`${this.images.tasks.size} task(s), ${pages} lazy pages; listening on ${sock}`);
    this.socket.on('task', (pid, fd, peer) => this.onTask(pid, fd, peer));
    this.socket.on('zombie', () => { this.zombies++; });
    this.socket.on('finished', () => this.onFinished());
    this.socket.on('end', () => {
      this.ended = true;
      this.check();
    });
    this.socket.on('error', (e) => this.fail(e));
  }

  private onTask(pid: number, fd: number, peer: PeerCredentials): void {
    if (this.settled) {
      this.socket?.release(fd);
      return;
    }
    // The task may be faulting already (criu restore sends the uffd before it says "FTSR"): its
    // areas are served first, and what can wait comes after: pinning it (criu restore, its
    // ancestor, is alive now), then its log line, deferred to "FTSR" (a write to stderr, while
    // in a one-CPU restore the reader just started cannot run). A task that cannot be served
    // is pinned before it fails, to be killed.
    const images = this.images!.tasks.get(pid);
    const task = adoptTask(pid, fd, this.socket!, {
      // Pages answered from JavaScript (read over HTTP) must not run ahead of the layout events.
      orderedAnswers: images !== undefined && this.images!.pages.get(images.pagesId)!.source.custom !== null,
      needed: NEEDED,
      serve: (uffd) => this.serveTask(pid, uffd, images),
      fatal: (e) => {
        this.pin(pid, peer);
        this.fail(e);
      },
    });
    if (task === null) return;
    this.tasks.push(task);
    this.pin(pid, peer);
    this.served.push(`pid ${pid}: serving ${images!.lazyPages} lazy pages in ${images!.areas.length} area(s)`);
    if (this.finished) task.fill();
  }

  /** Pinned before anything fails: the processes to kill then. */
  private pin(pid: number, peer: PeerCredentials): void {
    const pinned = pinRestored(pid, peer.pid);
    if (pinned) this.processes.push(pinned);
    else this.unpinned.push(pid);
  }

  private serveTask(pid: number, uffd: Userfaultfd, images: TaskImages | undefined): ServedTask {
    if (images === undefined) {
      throw new CriuError('ERR_CRIU_NO_IMAGES', `pid ${pid} has no images in ${this.options.imagesDir} ` +
        `(pstree.img lists ${[...this.images!.tasks.keys()].join(', ')})`);
    }
    const hooks = { fatal: (e: CriuError) => this.fail(e), log: this.log };
    const pages = this.images!.pages.get(images.pagesId)!.source;
    if (pages.custom !== null) return new RemoteTask(pid, uffd, images, pages, hooks);
    return new NativeTask(pid, uffd, images, pages, hooks, { record: this.options.record, prefetch: this.options.prefetch });
  }

  private logServed(): void {
    for (const line of this.served) this.log(line);
    this.served = [];
  }

  private onFinished(): void {
    this.logServed();
    this.finished = true;
    this.log(`restore finished: pushing the remaining pages of ${this.tasks.length} task(s)`);
    for (const t of this.tasks) t.fill();
    Promise.all(this.tasks.map((t) => t.done)).then(() => this.check());
  }

  private check(): void {
    if (this.settled || !this.finished || !this.ended) return;
    Promise.all(this.tasks.map((t) => t.done)).then(() => {
      if (this.settled) return;
      this.settle({ status: 0, tasks: this.summaries(), zombies: this.zombies, killed: {} });
    });
  }

  private summaries(): TaskSummary[] {
    return this.tasks.flatMap((t) => t.summaries());
  }

  /**
   * Bad input: the restored processes are killed (see the file comment), everything closed, and
   * the result says why.
   */
  fail(err: CriuError): void {
    if (this.settled) return;
    this.logServed();
    this.log(`${err.code}: ${err.message}`);
    const killed: Record<number, string> = {};
    for (const p of this.processes) {
      killed[p.pid] = killRestored(p);
      this.log(`pid ${p.pid}: ${killed[p.pid]}`);
    }
    for (const pid of this.unpinned) {
      killed[pid] = 'not killed: not a process criu restore made, as seen from here';
      this.log(`pid ${pid}: ${killed[pid]}`);
    }
    this.settle({ status: 1, error: err, tasks: this.summaries(), zombies: this.zombies, killed });
  }

  private settle(r: DaemonResult): void {
    this.settled = true;
    // Failed: the tasks are killed, so their uffds close now. With --record, each served
    // area writes its working set as it closes.
    if (r.status !== 0 || this.options.record !== undefined) {
      this.close();
      this.resolve(r);
      return;
    }
    // Every page is in: the result comes first, since the command exits on it (the kernel then
    // closes the uffds and the socket, without joining their threads: docs/criu.md,
    // "Performance"); the closes follow for a caller that stays.
    this.socket?.unlink();
    this.resolve(r);
    setImmediate(() => this.close());
  }

  private close(): void {
    for (const t of this.tasks) t.close();
    this.socket?.close();
  }

  /** Stops now (SIGINT, SIGTERM): as a failure, since no one would answer the next fault. */
  stop(signal: string): void {
    this.fail(new CriuError('ERR_CRIU_SOURCE', `stopped by ${signal} before every page was in`));
  }
}

function taskLine(t: TaskSummary): string {
  const who = t.child === undefined ? `pid ${t.pid}` : `pid ${t.pid} fork child ${t.child}`;
  return `  ${who}: ${t.lazyPages} lazy pages, ${t.faults} faults, ${t.filled} pages pushed after the restore, ` +
    `${t.prefetched} prefetched${t.exited ? ', exited first' : ''}\n`;
}

const PROGRAM = 'userfaultfd criu-lazy-pages';

/** The command. Returns the exit status: 0 when every task was served, 1 on failure, 2 on usage. */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout,
                           err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let values: Record<string, unknown>;
  let statusFd: number | undefined;
  try {
    const parsed = parseCommandLine(withoutVerbosity(argv), {
      'images-dir': { type: 'string', short: 'D' },
      'work-dir': { type: 'string', short: 'W' },
      'pages-url': { type: 'string', multiple: true, default: [] },
      record: { type: 'string' },
      prefetch: { type: 'string' },
      json: { type: 'boolean', default: false },
      'log-file': { type: 'string', short: 'o' },
      daemon: { type: 'boolean', short: 'd', default: false },
      pidfile: { type: 'string' },
      'status-fd': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    });
    values = parsed.values;
    if (values.help === true) {
      out.write(USAGE);
      return 0;
    }
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`, 'the images are given with -D DIR');
    if (values['images-dir'] === undefined) throw new UsageError('-D <images-dir> is required', 'give the checkpoint\'s images: -D DIR (criu dump -D DIR)');
    statusFd = toStatusFd(values['status-fd']);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(e, PROGRAM, err);
    throw e;
  }
  const p = probe({ backend: 'native' });
  if (!p.available) {
    err.write(`${PROGRAM}: ERR_UFFD_UNAVAILABLE: the kernel backend is unavailable (${p.reason}); run \`npx userfaultfd doctor\`\n`);
    return 1;
  }
  const pidfile = values.pidfile as string | undefined;
  if (values.daemon === true) return runInBackground(argv, pidfile, statusFd, err);
  const imagesDir = values['images-dir'] as string;
  const workDir = values['work-dir'] as string | undefined;
  const logFile = values['log-file'] as string | undefined;
  const daemon = new CriuLazyPages({
    imagesDir, workDir, pagesUrls: values['pages-url'] as string[], record: values.record as string | undefined,
    prefetch: values.prefetch as string | undefined,
    log: logFile === undefined ? (line) => err.write(`criu-lazy-pages: ${line}\n`) : fileLog(logFile, workDir ?? imagesDir),
  });
  const onSignal = (s: NodeJS.Signals): void => daemon.stop(s);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await daemon.start();
  if (daemon.listening) announceReady(process.pid, pidfile, statusFd);
  const r = await daemon.result;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  if (values.json === true) {
    for (const t of r.tasks) out.write(JSON.stringify({ type: 'task', ...t }) + '\n');
    out.write(JSON.stringify({
      type: 'summary', status: r.status, error: r.error ? { code: r.error.code, message: r.error.message } : null,
      tasks: r.tasks.length, zombies: r.zombies, killed: r.killed,
      faults: r.tasks.reduce((n, t) => n + t.faults, 0), filled: r.tasks.reduce((n, t) => n + t.filled, 0),
    }) + '\n');
  } else {
    out.write(`criu-lazy-pages: ${r.status === 0 ? 'every page is in' : `failed: ${r.error!.code}`}: ${r.tasks.length} task(s) ` +
      `and fork children, ${r.zombies} zombie(s)\n`);
    for (const t of r.tasks) out.write(taskLine(t));
  }
  return r.status;
}
