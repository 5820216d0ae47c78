'use strict';
// Dirty tracking and live snapshots (issue 16), each against a baseline measured in the same run:
//   scan      dirtyPages() of a 256 MiB armed range with 5% of its pages written, per GiB,
//             against a C loop doing the same PAGEMAP_SCAN walk (bench/c/dirty-scan.c)
//   snapshot  uffd.snapshot() of a quiescent 256 MiB region to a file, against write(2) of the
//             same bytes from C
//   stall     uffd.snapshot() of 32 MiB while a Worker rewrites it in a loop: how long writers
//             were held per WP fault (p50/p99, from the reader taking the fault to releasing it),
//             and how many pages were saved before a write; baseline: the same WP fault resolved
//             by the kernel itself (WP_ASYNC), per page
//   migrate   examples/migrate on 256 MiB with a 5% and a 25% write set: downtime and total time
//             of pre-copy, post-copy after pre-copy and stop-and-copy (no pre-copy at all)
// scan and snapshot run pinned (taskset -c 0) and unpinned, variants in random order, median of
// --runs; migrate runs unpinned (two processes and a writer Worker on one core would measure the
// scheduler), median of --runs. Prints a markdown section, written to bench/results-dirty-snapshot.md.
// Usage: node bench/dirty-snapshot.js [--runs 5] [--size-mib 256] [--only scan,snapshot,migrate]
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '5' },
  'size-mib': { type: 'string', default: '256' },
  only: { type: 'string', default: 'scan,snapshot,stall,migrate' },
  child: { type: 'string' },
} });
const RUNS = Number(values.runs);
const SIZE = Number(values['size-mib']) * 1024 * 1024;
const PAGE = 4096;
const ROOT = path.join(__dirname, '..');
const DIR = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(); // memory-backed: times the path, not a disk

// ---- the measured bodies (run in a child, pinned or not) -----------------------------------------

async function childScan() {
  const { Userfaultfd, Region } = require('../dist');
  const uffd = Userfaultfd.open({ features: ['WP_ASYNC', 'WP_UNPOPULATED'] });
  const region = Region.map(SIZE);
  uffd.register(region, { wp: true });
  uffd.writeProtect(region, { protect: true });
  // WP_ASYNC: writes take no userfault, so this thread may write the region itself.
  const v = new Uint8Array(region.buffer);
  for (let p = 0; p < SIZE / PAGE; p++) if (((p * 2654435761) >>> 0) % 1000 < 50) v[p * PAGE] = 1;
  const reps = 5;
  uffd.dirtyPages(region);
  const t0 = process.hrtime.bigint();
  let runs = 0;
  for (let i = 0; i < reps; i++) runs = uffd.dirtyPages(region).length;
  const ns = Number(process.hrtime.bigint() - t0) / reps;
  uffd.close();
  region.unmap();
  return { nsPerScan: ns, runs };
}

async function childSnapshot() {
  const { Userfaultfd, Region } = require('../dist');
  const region = Region.map(SIZE);
  const v = new Uint8Array(region.buffer);
  for (let i = 0; i < SIZE; i += 64) v[i] = i & 0xff;
  const uffd = Userfaultfd.open();
  const file = path.join(DIR, `uffd-bench-snap-${process.pid}`);
  const t0 = process.hrtime.bigint();
  await uffd.snapshot(region, file);
  const ns = Number(process.hrtime.bigint() - t0);
  fs.rmSync(file);
  uffd.close();
  region.unmap();
  return { ns };
}

async function childStall() {
  const { Worker } = require('worker_threads');
  const { Userfaultfd } = require('../dist');
  const length = 32 << 20;
  const worker = new Worker(path.join(ROOT, 'test', 'native', 'dirty-snapshot-writer.js'),
    { workerData: { dist: path.join(ROOT, 'dist'), length } });
  const first = await new Promise((resolve) => worker.once('message', resolve));
  const uffd = Userfaultfd.open();
  const file = path.join(DIR, `uffd-bench-stall-${process.pid}`);
  worker.postMessage({ cmd: 'pattern' });
  await new Promise((r) => setTimeout(r, 100)); // the writer is running
  const t0 = process.hrtime.bigint();
  const r = await uffd.snapshot({ start: first.address, length }, file);
  const ns = Number(process.hrtime.bigint() - t0);
  worker.postMessage({ cmd: 'stop' });
  await new Promise((resolve) => worker.once('message', resolve));
  await worker.terminate();
  fs.rmSync(file, { force: true });
  uffd.close();
  return { ns, saved: r.savedBeforeWrite, p50: r.stallNs.p50, p99: r.stallNs.p99, asyncNs: asyncWpFaultNs() };
}

/** The baseline: the same write-protect fault resolved by the kernel itself (WP_ASYNC), per page. */
function asyncWpFaultNs() {
  const { Userfaultfd, Region } = require('../dist');
  const uffd = Userfaultfd.open({ features: ['WP_ASYNC'] });
  const region = Region.map(8 << 20);
  const v = new Uint8Array(region.buffer);
  for (let i = 0; i < v.length; i += PAGE) v[i] = 1; // populated: the fault below is the WP one
  uffd.register(region, { wp: true });
  uffd.writeProtect(region, { protect: true });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < v.length; i += PAGE) v[i] = 2; // no userfault: safe on this thread
  const ns = Number(process.hrtime.bigint() - t0) / (v.length / PAGE);
  uffd.close();
  region.unmap();
  return ns;
}

// ---- orchestration --------------------------------------------------------------------------------

function run(argv, pinned) {
  const cmd = pinned ? 'taskset' : argv[0];
  const args = pinned ? ['-c', '0', ...argv] : argv.slice(1);
  const out = execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop());
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function buildC() {
  const out = path.join(os.tmpdir(), `uffd-dirty-scan-${process.pid}`);
  execFileSync('cc', ['-O2', '-o', out, path.join(__dirname, 'c', 'dirty-scan.c')]);
  return out;
}

/** Runs every variant RUNS times, shuffled, and returns the medians by variant name. */
function measure(variants, pick) {
  const samples = new Map(variants.map((v) => [v.name, []]));
  for (let r = 0; r < RUNS; r++) for (const v of shuffle([...variants])) samples.get(v.name).push(pick(run(v.argv, v.pinned)));
  return new Map([...samples].map(([k, s]) => [k, median(s)]));
}

function main() {
  const only = new Set(values.only.split(','));
  const c = buildC();
  const self = [process.execPath, __filename, '--size-mib', String(SIZE >> 20)];
  const lines = [`## Dirty tracking and live snapshots (bench/dirty-snapshot.js)`, '',
    `${os.cpus().length} CPUs, Linux ${os.release()}, Node ${process.version}; ${SIZE >> 20} MiB regions; median of ${RUNS} runs; ` +
    `files on ${DIR}.`, ''];
  try {
    if (only.has('scan')) {
      const variants = [];
      for (const pinned of [true, false]) {
        variants.push({ name: `js-${pinned}`, pinned, argv: [...self, '--child', 'scan'] });
        variants.push({ name: `c-${pinned}`, pinned, argv: [c, 'scan', String(SIZE), '50', '5'] });
      }
      const m = measure(variants, (r) => r.nsPerScan);
      const perGiB = (ns) => (ns * (1 << 30) / SIZE / 1e6).toFixed(2);
      lines.push('### Dirty scan: dirtyPages() vs a C PAGEMAP_SCAN loop (5% of pages written, no reset)', '',
        '| | dirtyPages ms/GiB | C ms/GiB | ratio |', '|---|---|---|---|');
      for (const pinned of [true, false]) {
        const js = m.get(`js-${pinned}`);
        const cc = m.get(`c-${pinned}`);
        lines.push(`| ${pinned ? 'pinned' : 'unpinned'} | ${perGiB(js)} | ${perGiB(cc)} | ${(js / cc).toFixed(2)}x |`);
      }
      lines.push('');
    }
    if (only.has('snapshot')) {
      const variants = [];
      for (const pinned of [true, false]) {
        variants.push({ name: `js-${pinned}`, pinned, argv: [...self, '--child', 'snapshot'] });
        variants.push({ name: `c-${pinned}`, pinned, argv: [c, 'write', String(SIZE), path.join(DIR, `uffd-bench-write-${process.pid}`)] });
      }
      const m = measure(variants, (r) => r.nsPerScan ?? r.ns);
      fs.rmSync(path.join(DIR, `uffd-bench-write-${process.pid}`), { force: true });
      const gbps = (ns) => (SIZE / ns).toFixed(2);
      lines.push('### Snapshot of a quiescent region vs write(2) of it (GB/s, file opened, written, fdatasync\'d)', '',
        '| | snapshot GB/s | write(2) GB/s | snapshot time / write time |', '|---|---|---|---|');
      for (const pinned of [true, false]) {
        const js = m.get(`js-${pinned}`);
        const cc = m.get(`c-${pinned}`);
        lines.push(`| ${pinned ? 'pinned' : 'unpinned'} | ${gbps(js)} | ${gbps(cc)} | ${(js / cc).toFixed(2)}x |`);
      }
      lines.push('');
    }
    if (only.has('stall')) {
      const variants = [true, false].map((pinned) => ({ name: `stall-${pinned}`, pinned, argv: [...self, '--child', 'stall'] }));
      const all = new Map(variants.map((v) => [v.name, []]));
      for (let r = 0; r < RUNS; r++) for (const v of shuffle([...variants])) all.get(v.name).push(run(v.argv, v.pinned));
      lines.push('### Snapshot of 32 MiB under a Worker rewriting it: writer stall per WP fault', '',
        '| | stall p50 µs | stall p99 µs | kernel-resolved WP fault µs (WP_ASYNC) | p50 / that | pages saved before a write | snapshot ms |',
        '|---|---|---|---|---|---|---|');
      for (const pinned of [true, false]) {
        const s = all.get(`stall-${pinned}`);
        const med = (k) => median(s.map((x) => x[k]));
        lines.push(`| ${pinned ? 'pinned' : 'unpinned'} | ${(med('p50') / 1e3).toFixed(1)} | ${(med('p99') / 1e3).toFixed(1)} | ` +
          `${(med('asyncNs') / 1e3).toFixed(2)} | ${(med('p50') / med('asyncNs')).toFixed(1)}x | ${med('saved')} | ${(med('ns') / 1e6).toFixed(0)} |`);
      }
      lines.push('');
    }
    if (only.has('migrate')) {
      lines.push(`### Migration downtime on ${SIZE >> 20} MiB (examples/migrate, loopback TCP, unpinned)`, '',
        '| write set | mode | downtime ms | total ms | pre-copy rounds | last set MiB | downtime / stop-and-copy |', '|---|---|---|---|---|---|---|');
      for (const ws of [5, 25]) {
        const variants = ['precopy', 'postcopy-after-precopy', 'stopcopy'].map((mode) => ({ name: mode, pinned: false,
          argv: [process.execPath, path.join(ROOT, 'examples', 'migrate', 'index.js'), '--size', String(SIZE >> 20),
            '--write-set', String(ws), '--mode', mode, '--json'] }));
        const all = new Map(variants.map((v) => [v.name, []]));
        for (let r = 0; r < RUNS; r++) for (const v of shuffle([...variants])) all.get(v.name).push(run(v.argv, false));
        const med = (mode, key) => median(all.get(mode).map((x) => x[key]));
        const stop = med('stopcopy', 'downtimeMs');
        for (const mode of ['precopy', 'postcopy-after-precopy', 'stopcopy']) {
          lines.push(`| ${ws}% | ${mode} | ${med(mode, 'downtimeMs').toFixed(1)} | ${med(mode, 'totalMs').toFixed(0)} | ` +
            `${med(mode, 'rounds')} | ${(med(mode, 'lastDirtyBytes') / 1048576).toFixed(1)} | ${(med(mode, 'downtimeMs') / stop).toFixed(2)} |`);
        }
      }
      lines.push('');
    }
  } finally {
    fs.rmSync(c, { force: true });
  }
  const text = lines.join('\n');
  console.log(text);
  fs.writeFileSync(path.join(__dirname, 'results-dirty-snapshot.md'), text);
}

if (values.child) {
  const body = { scan: childScan, snapshot: childSnapshot, stall: childStall }[values.child];
  body().then((r) => console.log(JSON.stringify(r)));
} else {
  main();
}
