/**
 * `criu lazy-pages`' own ways of being started by scripts, for criu-lazy-pages to be a drop-in:
 * `-d` (run in the background: the command returns once the daemon listens), `--pidfile`,
 * `--status-fd` (one NUL byte written once it listens, then closed: what `criu restore
 * --status-fd` and criu's test harness wait on), `-o` (the log in a file, relative to the work
 * directory) and `-v[N]` (accepted; this daemon's log has one level). As criu/uffd.c orders it:
 * the socket listens before the status byte is written or the background parent returns, so a
 * `criu restore` started after either always connects.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../base/files';
import { binding } from '../base/native';
import { UsageError } from './cli-errors';

/** argv without CRIU's verbosity options (-v, -vv, -v4, --verbosity[=N]): accepted, ignored. */
export function withoutVerbosity(argv: string[]): string[] {
  return argv.filter((a) => !/^-v+\d*$/.test(a) && !/^--verbosity(=\d+)?$/.test(a));
}

/** --status-fd's value: an open fd number, else a usage error. */
export function toStatusFd(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const fd = Number(value);
  if (!/^\d+$/.test(String(value)) || !Number.isSafeInteger(fd)) {
    throw new UsageError(`--status-fd '${String(value)}' is not an fd number`, 'give the number of an open fd, as for criu');
  }
  try {
    fs.fstatSync(fd);
  } catch {
    throw new UsageError(`--status-fd ${fd} is not open`, 'give the number of an fd the command inherits');
  }
  return fd;
}

/** A log written line by line to `file` (relative to `dir`), appended to, as criu's -o is. */
export function fileLog(file: string, dir: string): (line: string) => void {
  const fd = fs.openSync(path.resolve(dir, file), 'a', 0o600);
  return (line) => fs.writeSync(fd, `criu-lazy-pages: ${line}\n`);
}

/** The daemon listens: the pidfile holds `pid`, the status fd gets its byte and is closed. */
export function announceReady(pid: number, pidfile: string | undefined, statusFd: number | undefined): void {
  if (pidfile !== undefined) writeFileAtomic(pidfile, Buffer.from(`${pid}\n`));
  if (statusFd === undefined) return;
  try {
    fs.writeSync(statusFd, Buffer.alloc(1));
  } finally {
    fs.closeSync(statusFd);
  }
}

/**
 * -d: the same command without -d, detached (its own session, stdio on /dev/null as criu's
 * daemon has it: give -o for a log), telling this parent through a status pipe when it listens.
 * Resolves 0 once it does (pidfile and status fd given to the daemon's pid), or the daemon's
 * exit status (1: bad images) when it ends before listening.
 */
export function runInBackground(argv: string[], pidfile: string | undefined, statusFd: number | undefined,
                                err: NodeJS.WritableStream): Promise<number> {
  const args = withoutOptions(argv, ['-d', '--daemon'], ['--pidfile', '--status-fd']);
  const bin = path.join(__dirname, '..', '..', 'bin', 'userfaultfd.js');
  const child = spawn(process.execPath, [bin, 'criu-lazy-pages', ...args, '--status-fd', '3'],
    { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const pipe = child.stdio[3]!;
  return new Promise((resolve) => {
    let ready = false;
    pipe.once('data', () => {
      ready = true;
      pipe.destroy();
      child.unref();
      announceReady(child.pid!, pidfile, statusFd);
      resolve(0);
    });
    child.once('exit', (code, signal) => {
      if (ready) return;
      err.write(`userfaultfd criu-lazy-pages: the daemon ended before it listened (${signal ?? `exit status ${code}`}); ` +
        'its log (-o FILE) says why\n');
      resolve(code === null || code === 0 ? 1 : code);
    });
  });
}

/** argv without the flags `bare` and the options `valued` (with their values, either form). */
function withoutOptions(argv: string[], bare: string[], valued: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (bare.includes(a) || valued.some((v) => a.startsWith(`${v}=`))) continue;
    if (valued.includes(a)) i++;
    else out.push(a);
  }
  return out;
}

/**
 * The command's end: _exit(2) at once, its output written. Scripts, like the benchmark, take
 * this exit for "every page is in", and Node's own exit (the 'exit' handlers closing each uffd
 * and joining its reader thread, the platform's threads, the heap) would add several ms after
 * the last page. The kernel closes the uffds, every page being in, and the socket. With output
 * still queued (a stream that writes asynchronously) it is process.exit().
 */
export function exitNow(status: number): never {
  if (binding !== null && process.stdout.writableLength === 0 && process.stderr.writableLength === 0) binding.exitNow(status);
  process.exit(status);
}
