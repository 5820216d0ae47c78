/**
 * One restored task of a CRIU lazy restore, served from images on this machine: each lazy area
 * is served natively (no JavaScript per fault) from a sparse view of pages-N.img, following the
 * task's memory (serve's `follow`: mremap moves it, munmap cuts it, a dropped page reads as zeros
 * and is never filled again, a fork child's uffd serves what was still missing at the fork).
 * After the restore, fill() installs the rest in the background, demand faults first.
 */
import type { FillResult, PageFault, ServeOptions } from '../base/types';
import { Userfaultfd } from '../core/userfaultfd';
import { PageSource } from '../sources/page-source';
import { readWorkingSet } from '../sources/working-set';
import { describeError } from '../base/errors';
import { CriuError } from './criu-errors';
import type { TaskImages } from './criu-images';

/** How a task (or a fork child of it) was served. */
export interface TaskSummary {
  pid: number;
  /** A fork child of the restored task `pid`: its index among them (1, 2, ...). */
  child?: number;
  /** Pages the images hold for it (fork children: what was still missing at the fork is theirs). */
  lazyPages: number;
  /** Page faults it raised (every missing-page fault, holes and all: CRIU's "#PF"). */
  faults: number;
  /** Pages installed by the background fill after the restore. */
  filled: number;
  /** Pages a working set prefetched (--prefetch). */
  prefetched: number;
  /** Pages of the working sets it was served with (--prefetch): what prefetch could fill first. */
  workingSetPages?: number;
  /** It exited before all its pages were in. */
  exited: boolean;
}

/** What a task server reports to the daemon. */
export interface TaskHooks {
  /** The task cannot be served: the daemon fails (and kills the restored tasks). */
  fatal(err: CriuError): void;
  log(line: string): void;
}

/** The part every task server has: the daemon fills it after "FTSR" and waits for `done`. */
export interface ServedTask {
  readonly pid: number;
  /** Starts pushing what is not in yet (after "FTSR"), fork children included. */
  fill(): void;
  /** Resolves once every page of the task and of its fork children is in, or they exited. */
  readonly done: Promise<void>;
  summaries(): TaskSummary[];
  close(): void;
}

interface Served {
  uffd: Userfaultfd;
  child: number;
  lazyPages: number;
  zeroFaults: number;
  result: FillResult | null;
  filling: boolean;
}

export interface NativeTaskOptions {
  /** Working sets: FILE.<pid>.<area start, hex> per area. */
  record?: string;
  prefetch?: string;
}

export class NativeTask implements ServedTask {
  private readonly served: Served[] = [];
  private filling = false;
  private children = 0;
  private workingSetPages = 0;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((resolve) => { this.resolveDone = resolve; });

  constructor(readonly pid: number, uffd: Userfaultfd, images: TaskImages, private readonly pages: PageSource,
              private readonly hooks: TaskHooks, private readonly options: NativeTaskOptions = {}) {
    // The task may be faulting already: its waiting faults are read once every area is served.
    uffd._withReaderHeld(() => {
      for (const area of images.areas) this.serveArea(uffd, area);
      this.add(uffd, 0, images.lazyPages);
    });
  }

  private serveArea(uffd: Userfaultfd, area: TaskImages['areas'][number]): void {
    const range = { start: area.start, length: area.length };
    const source = PageSource.sparse(this.pages, area.runs);
    // Registered by CRIU's restorer (maybe not yet: the uffd comes before the memory is in place).
    const opts: ServeOptions = { follow: true, removed: 'zero', register: false };
    const name = (prefix: string): string => `${prefix}.${this.pid}.${area.start.toString(16)}`;
    if (this.options.record !== undefined) opts.record = name(this.options.record);
    if (this.options.prefetch !== undefined && area.pages > 0) {
      try {
        const file = name(this.options.prefetch);
        uffd.serve(range, source, { ...opts, prefetch: file });
        const set = readWorkingSet(file);
        this.workingSetPages += set === null ? 0 : set.runs.reduce((n, r) => n + r.count, 0);
        return;
      } catch (e) {
        // A working set is a hint: one that is missing or recorded for other images costs
        // the area its prefetch, not the task its restore.
        this.hooks.log(`pid ${this.pid}: area 0x${area.start.toString(16)}: working set not used (${describeError(e as Error)})`);
      }
    }
    uffd.serve(range, source, opts);
  }

  /** A uffd of the task (or of a fork child): its faults outside the areas, its forks, its errors. */
  private add(uffd: Userfaultfd, child: number, lazyPages: number): Served {
    const s: Served = { uffd, child, lazyPages, zeroFaults: 0, result: null, filling: false };
    this.served.push(s);
    // Memory the task grew (a stack, mremap to a larger size) is registered but in no area:
    // zeros, as criu lazy-pages answers a fault outside its lazy pages.
    uffd.on('pagefault', (f: PageFault) => this.zero(s, f));
    uffd.on('fork', (e: { uffd: Userfaultfd }) => {
      const c = this.add(e.uffd, ++this.children, 0);
      if (this.filling) this.fillOne(c);
    });
    uffd.on('error', (e: Error & { code?: string }) => {
      this.hooks.fatal(new CriuError('ERR_CRIU_SOURCE', `pid ${this.pid}${child ? ` (fork child ${child})` : ''}: ${describeError(e)}`));
    });
    return s;
  }

  private zero(s: Served, f: PageFault): void {
    const page = f.address - (f.address % BigInt(s.uffd.pageSize));
    s.zeroFaults++;
    try {
      s.uffd.zeropage({ start: page, length: s.uffd.pageSize });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EEXIST') s.uffd.wake({ start: page, length: s.uffd.pageSize });
      else if (code !== 'ENOENT' && code !== 'ESRCH' && !s.uffd.closed) {
        this.hooks.fatal(new CriuError('ERR_CRIU_SOURCE', `pid ${this.pid}: a fault at 0x${page.toString(16)} ` +
          `could not be answered: ${describeError(e as Error)}`));
      }
    }
  }

  fill(): void {
    if (this.filling) return;
    this.filling = true;
    for (const s of this.served) this.fillOne(s);
  }

  private fillOne(s: Served): void {
    if (s.filling || s.uffd.closed) return;
    s.filling = true;
    s.uffd.fill().then((r) => {
      s.result = r;
      if (this.served.every((x) => x.result !== null)) this.resolveDone();
    }, (e: Error & { code?: string }) => {
      if (!s.uffd.closed) this.hooks.fatal(new CriuError('ERR_CRIU_SOURCE', `pid ${this.pid}: ${describeError(e)}`));
    });
  }

  summaries(): TaskSummary[] {
    return this.served.map((s) => {
      const st = s.uffd.closed ? null : s.uffd.stats();
      const out: TaskSummary = {
        pid: this.pid, lazyPages: s.lazyPages, faults: st?.faults ?? 0, filled: st?.filled ?? 0,
        prefetched: st?.prefetched ?? 0, exited: s.result?.ownerGone ?? false,
      };
      if (s.child !== 0) out.child = s.child;
      else if (this.options.prefetch !== undefined) out.workingSetPages = this.workingSetPages;
      return out;
    });
  }

  close(): void {
    for (const s of this.served) s.uffd.close();
  }
}
