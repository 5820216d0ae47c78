/**
 * `npx userfaultfd firecracker-handler <socket> <memory-file> [options]`: the command around
 * FirecrackerHandler (firecracker-handler.ts): its options, and the lines or JSON it prints.
 * bin/userfaultfd.js runs main().
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { probe } from '../core/backend';
import { Userfaultfd } from '../core/userfaultfd';
import { FirecrackerHandler, OnError, VmSummary } from './firecracker-handler';
import { parseCommandLine, reportUsageError, UsageError } from './cli-errors';

export const USAGE = `usage: userfaultfd firecracker-handler <socket> <memory-file> [options]

  --peers N             exit once N VMs have come and gone (default 1)
  --on-error kill|keep  a VM that cannot be served is killed (default) or left running
  --record FILE         record each mapping's working set (mapping i > 0: FILE.i)
  --prefetch FILE       prefetch a recorded working set (mapping i > 0: FILE.i)
  --prefetch-mode MODE  background (default): while the VM runs, following its faults;
                        eager: the VM's faults wait until the whole set is in
  --pages               keep each set's pages in a compact file beside it (FILE.pages):
                        written with --record, read by --prefetch (a cold restore reads it
                        in order instead of seeking in the memory file)
  --allow-uid UID       also accept VMs run as this uid (repeatable; the jailer's uid):
                        the socket is then created 0666, and other uids are refused
  --json                print one JSON line per VM and a JSON summary on stdout
  --exit-with-parent    stop (as on SIGTERM) once the process that started it has exited
`;

/** How often --exit-with-parent looks at the parent pid. */
const PARENT_POLL_MS = 250;

function summaryLine(vms: VmSummary[], rejected: number): string {
  const sum = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
  const mib = (sum((v) => v.bytes) / (1 << 20)).toFixed(1);
  const failed = vms.filter((v) => v.status !== 'served').length;
  const unsaved = vms.filter((v) => v.recordError !== undefined).length;
  return `firecracker-handler: ${vms.length} peer(s), ${sum((v) => v.faults)} faults, ${mib} MiB served, ` +
    `${sum((v) => v.removedPages)} pages removed (zero on refault), ${failed} failed, ${rejected} connection(s) rejected` +
    `${unsaved > 0 ? `, ${unsaved} working set(s) not saved` : ''}\n`;
}

function vmLine(v: VmSummary): string {
  const what = v.status === 'served' ? 'served' : `${v.status} (${v.error?.code})`;
  return `  vm pid ${v.pid}: ${what}, ${v.faults} faults, ${v.bytes} bytes, p50 ${(v.latencyNs.p50 / 1000).toFixed(0)} us, ` +
    `p99 ${(v.latencyNs.p99 / 1000).toFixed(0)} us, ${v.removedPages} pages removed` +
    `${v.recordError ? `, working set not saved (${v.recordError.code})` : ''}\n`;
}

/** Whether this build's serve() takes record/prefetch (the working-set feature). */
function hasWorkingSets(): boolean {
  return typeof (Userfaultfd.prototype as unknown as { saveWorkingSet?: unknown }).saveWorkingSet === 'function';
}

/**
 * The command. Returns the exit status: 0 when every VM was served (and, with --record, its set
 * saved), 1 when one was not, 2 on usage.
 */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout,
                           err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let o: CommandLine;
  try {
    const parsed = parseCommandLine(argv, {
      peers: { type: 'string', default: '1' },
      'on-error': { type: 'string', default: 'kill' },
      record: { type: 'string' },
      prefetch: { type: 'string' },
      'prefetch-mode': { type: 'string', default: 'background' },
      pages: { type: 'boolean', default: false },
      'allow-uid': { type: 'string', multiple: true, default: [] },
      json: { type: 'boolean', default: false },
      'exit-with-parent': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
    if (parsed.values.help === true) {
      out.write(USAGE);
      return 0;
    }
    o = checkCommandLine(parsed.values, parsed.positionals);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(e, PROGRAM, err);
    throw e;
  }
  const { values } = o;
  if ((values.record !== undefined || values.prefetch !== undefined) && !hasWorkingSets()) {
    return reportUsageError(new UsageError('ERR_UFFD_UNSUPPORTED: --record and --prefetch need working sets ' +
      '(serve({ record, prefetch })), which this build of userfaultfd does not have', 'leave them out'), PROGRAM, err);
  }
  const p = probe({ backend: 'native' });
  if (!p.available) {
    err.write(`${PROGRAM}: ERR_UFFD_UNAVAILABLE: the kernel backend is unavailable (${p.reason}); ` +
      'run `npx userfaultfd doctor`\n');
    return 1;
  }
  const { socket, memoryFile, peers, onError, allowUids, prefetchMode } = o;
  const inUse = await socketInUse(socket);
  if (inUse) return reportUsageError(inUse, PROGRAM, err);
  const handler = new FirecrackerHandler({ socket, memoryFile, peers, onError, allowUids,
    record: values.record as string | undefined, prefetch: values.prefetch as string | undefined,
    prefetchMode, pages: values.pages === true,
    log: (line) => err.write(`firecracker-handler: ${line}\n`) });
  if (!fs.existsSync(memoryFile)) handler.log(`warning: the memory file ${memoryFile} does not exist (yet)`);
  const stop = (): void => handler.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.once('SIGHUP', stop);
  const watching = values['exit-with-parent'] === true ? watchParent(() => {
    handler.log('the process that started it has exited (--exit-with-parent): stopping');
    stop();
  }) : null;
  let vms: VmSummary[];
  try {
    vms = await handler.run((v) => {
      if (values.json) out.write(JSON.stringify({ type: 'vm', ...v }) + '\n');
    });
  } catch (e) {
    const bind = bindError(e, socket);
    if (bind) return reportUsageError(bind, PROGRAM, err);
    throw e;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    process.removeListener('SIGHUP', stop);
    if (watching) clearInterval(watching);
  }
  const failed = vms.filter((v) => v.status !== 'served').length;
  const unsaved = vms.filter((v) => v.recordError !== undefined).length;
  if (values.json) {
    const total = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
    out.write(JSON.stringify({
      type: 'summary', vms: vms.length, failed, rejected: handler.rejected, faults: total((v) => v.faults),
      bytes: total((v) => v.bytes), removedPages: total((v) => v.removedPages), ...(unsaved > 0 ? { unsaved } : {}),
    }) + '\n');
  } else {
    out.write(summaryLine(vms, handler.rejected));
    for (const v of vms) out.write(vmLine(v));
  }
  return failed === 0 && unsaved === 0 ? 0 : 1;
}


const PROGRAM = 'userfaultfd firecracker-handler';

interface CommandLine {
  socket: string;
  memoryFile: string;
  peers: number;
  onError: OnError;
  allowUids: number[];
  prefetchMode: 'background' | 'eager';
  values: Record<string, unknown>;
}

/** The positionals and option values, checked: a UsageError for anything that cannot be run. */
function checkCommandLine(values: Record<string, unknown>, positionals: string[]): CommandLine {
  if (positionals.length < 2) {
    throw new UsageError(`expected <socket> and <memory-file>, got ${positionals.length === 0 ? 'neither' : 'only one'}`,
      'give the socket path Firecracker connects to, then the guest memory snapshot file');
  }
  if (positionals.length > 2) throw new UsageError(`unexpected argument '${positionals[2]}'`, 'give only <socket> and <memory-file>');
  const [socket, memoryFile] = positionals;
  const peers = Number(values.peers);
  if (!Number.isInteger(peers) || peers < 1) throw new UsageError(`--peers must be a positive integer (got '${values.peers}')`, 'e.g. --peers 1');
  const onError = values['on-error'];
  if (onError !== 'kill' && onError !== 'keep') {
    throw new UsageError(`--on-error must be kill or keep (got '${onError}')`, 'write --on-error kill or --on-error keep');
  }
  const prefetchMode = values['prefetch-mode'];
  if (prefetchMode !== 'background' && prefetchMode !== 'eager') {
    throw new UsageError(`--prefetch-mode must be background or eager (got '${prefetchMode}')`,
      'write --prefetch-mode eager to install the set before the VM runs');
  }
  const uids = values['allow-uid'] as string[];
  const bad = uids.find((u) => !/^\d+$/.test(u) || Number(u) > 0xffffffff);
  if (bad !== undefined) throw new UsageError(`--allow-uid must be a numeric uid (got '${bad}')`, 'e.g. --allow-uid $(id -u firecracker)');
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(memoryFile);
  } catch {
    // Not there yet: a warning is logged, and a VM that connects before it appears is killed.
  }
  if (st !== null && !st.isFile() && !st.isBlockDevice()) {
    throw new UsageError(`the memory file ${memoryFile} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`,
      "give the guest memory snapshot file (Firecracker's mem_file_path)");
  }
  return { socket, memoryFile, peers, onError, allowUids: uids.map(Number), prefetchMode, values };
}

/**
 * --exit-with-parent: calls `gone` once the parent has exited, which shows as a new parent pid
 * (init or a subreaper adopts the orphan). Node has no PR_SET_PDEATHSIG; a look at getppid()
 * on an unref'd timer is the watch. A handler started by a program (a test runner, an
 * orchestrator) that is killed outright then does not outlive it, waiting for VMs that never come.
 */
function watchParent(gone: () => void): NodeJS.Timeout {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    gone();
  }, PARENT_POLL_MS);
  timer.unref();
  return timer;
}

/**
 * A UsageError when `socket` is a live socket (another handler listening: listenForUffd would
 * replace the file) or not a socket at all; null when it is free or a stale socket file.
 */
function socketInUse(socket: string): Promise<UsageError | null> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socket);
  } catch {
    return Promise.resolve(null);
  }
  if (!st.isSocket()) return Promise.resolve(new UsageError(`${socket} exists and is not a socket`, 'choose another socket path, or remove that file'));
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(new UsageError(`EADDRINUSE: another process is listening on ${socket}`, 'stop it, or choose another socket path'));
    });
    c.once('error', () => resolve(null));
  });
}

/** The UsageError for a socket that cannot be bound (ENOENT, EACCES, ...), else null. */
function bindError(e: unknown, socket: string): UsageError | null {
  const { code, syscall } = e as { code?: string; syscall?: string };
  if (syscall !== 'bind' && syscall !== 'listen' && syscall !== 'socket') return null;
  const dir = path.dirname(path.resolve(socket));
  const fixes: Record<string, [string, string]> = {
    ENOENT: [`the directory ${dir} does not exist`, `create it (mkdir -p ${dir}) or choose another socket path`],
    EACCES: [`no permission to create it in ${dir}`, 'choose a directory this user may write, or run as its owner'],
    EADDRINUSE: ['the address is in use', 'stop the process using it, or choose another socket path'],
    EROFS: [`${dir} is on a read-only file system`, 'choose a writable directory (e.g. under /run or /tmp)'],
  };
  const [why, fix] = fixes[code ?? ''] ?? [(e as Error).message, 'choose another socket path'];
  return new UsageError(`${code}: cannot listen on ${socket}: ${why}`, fix);
}
