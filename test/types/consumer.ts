// A CommonJS TypeScript consumer: everything here must compile.
import { PageSource, probe, Region, UffdError, Userfaultfd, constants, FEATURE_NAMES } from 'userfaultfd';
import type { DirtyRun, SnapshotResult } from 'userfaultfd';
import type {
  FeatureName, IoctlName, OpenOptions, PageFault, ProbeResult, Range, RegisterResult, Stats, UffdEvent,
} from 'userfaultfd';

export async function consumer(): Promise<void> {
  const p: ProbeResult = probe();
  const backend: 'native' | 'simulator' = p.backend;
  const features: Array<FeatureName | number> = p.features;
  const options: OpenOptions = { features: ['THREAD_ID', 'EVENT_REMOVE'], onSelfFault: 'zeropage', backend: 'auto' };
  const uffd: Userfaultfd = Userfaultfd.open(options);
  const region: Region = Region.map(16 * uffd.pageSize, { shared: true, backend });
  const address: bigint = region.address;
  const range: Range = { start: address, length: uffd.pageSize };
  const numeric: Range = { start: 0x7f0000000000, length: 4096 };
  const reg: RegisterResult = uffd.register(region, { missing: true, wp: true });
  const ioctls: Array<IoctlName | number> = reg.ioctls;
  uffd.on('pagefault', (e: PageFault) => {
    const tid: number | undefined = e.tid;
    const copied: number = uffd.copy(e.address, Buffer.alloc(uffd.pageSize), { dontWake: false, errorOnExist: false });
    void tid; void copied;
  });
  uffd.once('pagefault', (e) => { const a: bigint = e.address; const w: boolean = e.wp; void a; void w; });
  uffd.on('fork', (e) => { const child: Userfaultfd = e.uffd; child.close(); });
  uffd.on('remap', (e) => { const len: number = e.length; void len; });
  uffd.on('error', (err) => { const code: string | undefined = err.code; void code; });
  uffd.on('close', () => undefined);
  const zeroed: number = uffd.zeropage(range, { dontWake: true, errorOnExist: false });
  uffd.wake(range);
  uffd.writeProtect(numeric, { protect: true });
  uffd.continue(region.alias(), { wp: false });
  uffd.poison(range);
  uffd.move(range, numeric, uffd.pageSize, { allowSrcHoles: true });
  const served = uffd.serve(region, PageSource.file('/tmp/image', { offset: 0, mode: 'pread' }), { readahead: 'adaptive' });
  served.stop();
  uffd.serve(region, PageSource.buffer(new Uint8Array(4096)), { readahead: 65536 });
  uffd.serve(region, PageSource.zero());
  uffd.serve(region, PageSource.custom(async (offset, length, { signal }) => { void signal; return new Uint8Array(length + offset * 0); },
    { size: 4096, chunkSize: 1 << 20, concurrency: 4, retries: 3, onError: 'zeropage' }));
  const remote = PageSource.http('https://bucket.example/object', { headers: () => ({ authorization: 't' }), chunkSize: 1 << 20 });
  const info: { size: number; etag?: string } = await remote.ready();
  void info;
  const dedup: number | undefined = uffd.stats().source?.deduplicated;
  void dedup;
  const s: Stats = uffd.stats();
  const p99: number = s.latencyNs.p99;
  for await (const e of uffd.events()) {
    const ev: UffdEvent = e;
    if (ev.type === 'pagefault') { const w: boolean = ev.write; void w; }
    if (ev.type === 'remove') { const end: bigint = ev.end; void end; }
    break;
  }
  const bytes: Buffer = await region.read(0, 16);
  await region.write(0, bytes);
  region.dontneed(0, uffd.pageSize);
  region.protect(0, uffd.pageSize, 'read');
  try {
    uffd.copy(address, new Uint8Array(uffd.pageSize));
  } catch (err) {
    if (err instanceof UffdError) {
      const code: string = err.code;
      const n: number = err.errno;
      const call: string = err.syscall;
      const done: number | undefined = err.bytes;
      void code; void n; void call; void done;
    }
  }
  // Dirty tracking and live snapshots (docs/dirty-tracking.md)
  const runs: DirtyRun[] = uffd.dirtyPages(region, { reset: true });
  const runStart: bigint = runs[0].start;
  const offsets: Float64Array = uffd.dirtyOffsets(region, { reset: true });
  void offsets;
  const snap: SnapshotResult = await uffd.snapshot(region, '/tmp/image');
  const held: number = snap.savedBeforeWrite + snap.stallNs.p99 + (await uffd.snapshot({ start: runStart, length: 4096 }, 3)).bytes;
  void held;
  const again: Userfaultfd = Userfaultfd.fromFd(uffd.fd).unref().ref();
  const pageSize: number = constants.pageSize;
  const names: readonly string[] = FEATURE_NAMES;
  void zeroed; void ioctls; void p99; void features; void again; void pageSize; void names;
  uffd.close();
  region.unmap();
}
