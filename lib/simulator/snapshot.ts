/**
 * Dirty tracking and live snapshots over simulated memory: what PAGEMAP_SCAN and the native
 * snapshot writer do, on the simulator's page tables. JS thread only.
 *
 * What the simulator can see: writes made through region.write() (and the ioctls) go through
 * its page tables, so they are tracked and they take WP faults. Writes through region.buffer
 * (a plain ArrayBuffer here) touch no page table: they are neither tracked nor held by a
 * snapshot. The kernel sees every write, from any thread.
 */
import * as fs from 'fs';
import { constants } from '../base/constants';
import { uffdError } from '../base/errors';
import type { DirtyRun } from '../sources/dirty';
import type { RawSnapshotResult } from '../sources/snapshot';
import { addressSpace, Mapping } from './address-space';
import type { UffdContext, Waiter } from './context';
import { FaultStats } from '../base/fault-stats';

const M = constants.modes;

/** The mapping holding [start, start + length), or the error the kernel would give (no VMA). */
function mappingOf(start: bigint, length: number, syscall: string): Mapping {
  const m = addressSpace.findRange(start, length);
  if (m === null) throw uffdError('ENOENT', syscall, undefined, 'no mapping there');
  return m;
}

/** PAGEMAP_SCAN of the written pages: a page is written while it carries no uffd-wp bit. */
export function scanWritten(ctx: UffdContext, start: bigint, length: number, reset: boolean): DirtyRun[] {
  const m = mappingOf(start, length, 'PAGEMAP_SCAN');
  const first = m.pageOf(start);
  const last = first + length / m.pageSize;
  for (let p = first; p < last; p++) {
    // PM_SCAN_CHECK_WPASYNC: a page outside a WP_ASYNC registration fails the whole scan.
    if (m.owner[p] !== ctx || (m.mode[p] & M.REGISTER_WP) === 0) throw uffdError('EPERM', 'PAGEMAP_SCAN');
  }
  const runs: DirtyRun[] = [];
  for (let p = first; p < last; p++) {
    if (m.wp[p]) continue;
    const at = m.addressOf(p);
    const prev = runs[runs.length - 1];
    if (prev && prev.start + BigInt(prev.length) === at) prev.length += m.pageSize;
    else runs.push({ start: at, length: m.pageSize });
    if (reset) m.wp[p] = 1; // PM_SCAN_WP_MATCHING: the page is protected again (a marker if unmapped)
  }
  return runs;
}

const CHUNK_PAGES = 256;

/**
 * One snapshot in progress. The stream copies chunks of pages and yields between them, so that
 * region.write() accesses run in between and fault on the pages not yet saved.
 */
export class SimSnapshot {
  private readonly m: Mapping;
  private readonly first: number;
  private readonly count: number;
  private readonly saved: Uint8Array;
  private readonly image: Buffer;
  private savedBeforeWrite = 0;
  private readonly stats = new FaultStats();

  constructor(private readonly ctx: UffdContext, readonly start: bigint, readonly length: number) {
    this.m = mappingOf(start, length, 'snapshot');
    this.first = this.m.pageOf(start);
    this.count = length / this.m.pageSize;
    this.saved = new Uint8Array(this.count);
    this.image = Buffer.alloc(length);
  }

  contains(address: bigint): boolean {
    return address >= this.start && address < this.start + BigInt(this.length);
  }

  /** Protects, streams and releases the range, then writes the image at the fd's offset. */
  async run(fd: number): Promise<RawSnapshotResult> {
    const m = this.m;
    for (let i = 0; i < this.count; i++) {
      const p = this.first + i;
      if (!m.present(p) && (m.mode[p] & M.REGISTER_MISSING) && !(m.shared && m.backing.cached[p])) {
        throw uffdError('EOPNOTSUPP', 'snapshot', undefined,
          'the simulator cannot snapshot a page still missing in a MISSING range; the kernel backend can');
      }
    }
    // Populate (reading maps a zero page) and protect: one step, as nothing runs in between here.
    for (let i = 0; i < this.count; i++) {
      const p = this.first + i;
      m.mapped[p] = 1;
      if (m.shared) m.backing.cached[p] = 1;
      m.wp[p] = 1;
    }
    try {
      for (let base = 0; base < this.count; base += CHUNK_PAGES) {
        const end = Math.min(base + CHUNK_PAGES, this.count);
        for (let i = base; i < end; i++) if (!this.saved[i]) this.save(i);
        this.release(base, end);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await writeAll(fd, this.image);
    } finally {
      this.release(0, this.count);
    }
    return { bytes: this.length, savedBeforeWrite: this.savedBeforeWrite,
      p50: this.stats.percentile(0.5), p99: this.stats.percentile(0.99) };
  }

  /** A write stopped on a page of the range (its fault message): save it first, then let it go. */
  onWriteFault(w: Waiter): void {
    const i = Number((w.address - this.start) / BigInt(this.m.pageSize));
    if (!this.saved[i]) {
      this.save(i);
      this.savedBeforeWrite++;
    }
    this.release(i, i + 1);
    this.stats.recordLatency(Number(process.hrtime.bigint() - w.at));
  }

  private save(i: number): void {
    const size = this.m.pageSize;
    const p = this.first + i;
    this.image.set(new Uint8Array(this.m.backing.memory, p * size, size), i * size);
    this.saved[i] = 1;
  }

  /** Un-protects pages [from, to) of the range and wakes the writes waiting on them. */
  private release(from: number, to: number): void {
    const size = this.m.pageSize;
    this.m.wp.fill(0, this.first + from, this.first + to);
    this.ctx.wakeRange(this.start + BigInt(from * size), (to - from) * size);
  }
}

/**
 * Writes all of `image` at the fd's offset, as native WriteAll does: write(2) may write less
 * than asked (a file size limit, a full disk), and only the next write reports why (EFBIG,
 * ENOSPC). A write of nothing is EIO, never a loop.
 */
async function writeAll(fd: number, image: Buffer): Promise<void> {
  for (let done = 0; done < image.length;) {
    const n = await new Promise<number>((resolve, reject) => {
      fs.write(fd, image, done, image.length - done, null, (err, written) => (err ? reject(err) : resolve(written)));
    });
    if (n === 0) throw uffdError('EIO', 'write', done, 'the snapshot destination took no more bytes');
    done += n;
  }
}
