/**
 * A restored task's arrival: its userfaultfd, just received on lazy-pages.socket, adopted,
 * checked and served. criu restore sends the uffd before the task's memory is in place and goes
 * on restoring, and the restorer faults on a lazy page (rseq on its TLS) before "FTSR": until
 * every area is served, that fault waits, and in a one-CPU restore (taskset) every microsecond
 * the daemon spends here is one the restore does not run. So the warm-up, rehearse(), runs this
 * very path ROUNDS times before the daemon listens (socket, parse, adoption, several serve()
 * calls, the pin), and the first task finds none of it cold (docs/criu.md, "Performance").
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { FeatureName } from '../base/constants';
import { Userfaultfd } from '../core/userfaultfd';
import { Region } from '../core/region';
import type { PageSource } from '../sources/page-source';
import { describeError } from '../base/errors';
import { asCriuError, CriuError } from './criu-errors';
import { LazyPagesSocket } from './criu-socket';
import { sendUffd } from './fdpass';
import { pinRestored } from './restored-processes';
import { NativeTask, ServedTask } from './criu-task';

/** The events a restored task's userfaultfd must report: criu restore asks for exactly these. */
export const NEEDED: readonly FeatureName[] = ['EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE', 'EVENT_UNMAP'];

/** What the daemon does with a task's uffd. */
export interface Arrival {
  /** Answered from JavaScript (pages over HTTP): answers must not run ahead of the layout events. */
  orderedAnswers: boolean;
  /** The events its uffd must have (ERR_CRIU_UFFD_FEATURES otherwise). */
  needed: readonly FeatureName[];
  /** Serves the adopted uffd; throws a CriuError when the task cannot be served. */
  serve(uffd: Userfaultfd): ServedTask;
  /** The task cannot be served: called before its uffd is closed (its restored tasks are killed first). */
  fatal(err: CriuError): void;
}

/**
 * Adopts the fd that came with task `pid` (Userfaultfd.fromFd duplicates it; the socket's copy
 * is closed) and serves it. Null when it cannot: `fatal` ran first, then the uffd was closed
 * (once closed, the task's missing pages would read as zeros).
 */
export function adoptTask(pid: number, fd: number, socket: LazyPagesSocket, arrival: Arrival): ServedTask | null {
  let uffd: Userfaultfd;
  try {
    uffd = Userfaultfd.fromFd(fd, { backend: 'native', orderedAnswers: arrival.orderedAnswers });
  } catch (e) {
    arrival.fatal(new CriuError('ERR_CRIU_NOT_UFFD', `pid ${pid}: what came with its message is not a userfaultfd (${describeError(e as Error)})`));
    socket.release(fd);
    return null;
  }
  socket.release(fd);
  try {
    const missing = arrival.needed.filter((f) => !uffd.features.includes(f));
    if (missing.length > 0) {
      throw new CriuError('ERR_CRIU_UFFD_FEATURES', `pid ${pid}: its userfaultfd lacks ${missing.join(', ')}, ` +
        'without which its mremap, munmap, madvise and fork could not be followed');
    }
    return arrival.serve(uffd);
  } catch (e) {
    arrival.fatal(asCriuError(e));
    uffd.close();
    return null;
  }
}

/** Areas of the rehearsal's task: several, as a restored task has (a program's text, data, heap, stack...). */
const AREAS = 4;
/**
 * Rehearsals before the daemon listens. One leaves the path interpreted and its inline caches
 * cold: a second arrival then still takes about twice the steady time, which V8 reaches after
 * some 20-30 serve() calls (docs/criu.md, "Performance"). Each costs about 1 ms.
 */
const ROUNDS = 8;
const REHEARSAL_TIMEOUT_MS = 10000;

/**
 * The arrival path, end to end, ROUNDS times, each on a throwaway socket in a temporary
 * directory: a uffd of this process sent as criu restore sends one (its pid, then a byte with
 * the fd), adopted, its areas served from `pages`, a page faulted in and the rest filled,
 * closed. Rejects if any step fails (the daemon then serves on, cold).
 */
export async function rehearse(pages: PageSource, pageSize: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-lazy-pages-'));
  const rounds = async (): Promise<void> => {
    for (let i = 0; i < ROUNDS; i++) await rehearseOnce(pages, pageSize, path.join(dir, `lazy-pages.${i}.socket`));
  };
  // A warm-up that never ends must not keep the daemon from listening.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the warm-up took over ${REHEARSAL_TIMEOUT_MS} ms`)), REHEARSAL_TIMEOUT_MS);
  });
  try {
    await Promise.race([rounds(), late]);
  } finally {
    clearTimeout(timer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function rehearseOnce(pages: PageSource, pageSize: number, socketPath: string): Promise<void> {
  const region = Region.map(AREAS * 2 * pageSize, { backend: 'native' });
  let own: Userfaultfd | null = null;
  let socket: LazyPagesSocket | null = null;
  let task: ServedTask | null = null;
  try {
    // The events criu restore asks for need CAP_SYS_PTRACE (fork): without it, a plain uffd.
    try {
      own = Userfaultfd.open({ backend: 'native', features: [...NEEDED] });
    } catch {
      own = Userfaultfd.open({ backend: 'native' });
    }
    own.register(region, { missing: true });
    const needed = NEEDED.filter((f) => own!.features.includes(f));
    const areas = Array.from({ length: AREAS }, (_, i) => ({
      start: region.address + BigInt(2 * i * pageSize), length: 2 * pageSize,
      runs: [{ offset: 0, length: pageSize, sourceOffset: 0 }], pages: 1,
    }));
    const s = new LazyPagesSocket(socketPath);
    socket = s;
    const arrived = new Promise<ServedTask>((resolve, reject) => {
      // After the task, the connection ends without "FTSR": the socket's error then is expected.
      s.on('error', reject);
      s.on('task', (pid: number, fd: number) => {
        let failure: CriuError | null = null;
        const t = adoptTask(pid, fd, s, {
          orderedAnswers: false, needed,
          serve: (uffd) => new NativeTask(pid, uffd, { pid, pagesId: 0, lazyPages: AREAS, areas }, pages,
            { fatal: () => undefined, log: () => undefined }),
          fatal: (e) => { failure = e; },
        });
        if (t === null) reject(failure);
        else resolve(t);
      });
    });
    const pid = Buffer.alloc(5);
    pid.writeInt32LE(1, 0);
    sendUffd(socketPath, own, pid, { framing: 'raw' });
    task = await arrived;
    pinRestored(process.pid, process.pid); // its code warmed as onTask runs it (the result unused)
    // One demand fault, answered natively, as the restorer's first.
    await region.read(0, 1);
    task.fill();
    await task.done;
    task.summaries();
  } finally {
    task?.close();
    socket?.close();
    // Closed before the unmap: an UNMAP event nobody reads would block the unmap for ever.
    own?.close();
    region.unmap();
  }
}
