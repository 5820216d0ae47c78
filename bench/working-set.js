'use strict';
// Working sets: restoring an image of which ~25% is touched, with the set recorded by an
// earlier run of the same program, served as
//   lazy            serve() alone (adaptive read-ahead)
//   prefetch        serve({ prefetch }): the set installed in the background while the program runs
//   prefetch+pages  the same, read from the set's compact page file (workingSet: { pages: true })
//   eager           serve({ prefetch, prefetchMode: 'eager' }): the program's faults wait until the set is in
//   eager+pages     the same, from the compact page file
//   precopy         the whole image copied in first, then the program runs (runs workload)
//   memory          baseline: the image already in the program's memory (nothing to restore)
// Two workloads:
//   scattered  a 512 MiB image, 25% of its pages as single pages at scattered places in a random
//              order, touched at once by the program: this process's JS thread right after
//              serve() returns, and another process (bench/c/ws-touch.c, which sends its uffd here
//              as a VM does)
//   runs       a 1 GiB image, 25% in runs of 1-32 pages in a shuffled order, touched by the other
//              process (the workload of the first working-set figures)
// Each in four cells: warm and cold page cache, unpinned and pinned (taskset -c 0: the program,
// the reader and the prefetch thread share one CPU). Cold: the image, the set and its page file
// leave the page cache before each run, those files only (posix_fadvise DONTNEED; no host-wide
// drop_caches). Times count from the moment serve() is called; first byte is the first touched
// page read; demand faults and prefetched pages are stats(). Before each variant's timed part,
// the same for all (baseline included): the program's view of its memory is made (JS thread:
// region.buffer, whose 512 MiB external ArrayBuffer starts a V8 GC) and two full GCs run, so no
// variant pays for a collection of an earlier one's garbage. Median of --runs runs, variants in
// random order; the load average is printed with each cell. Writes bench/results-working-set.md.
//
// Usage: node bench/working-set.js [--workload both|scattered|runs] [--runs 3] [--bytes 64]
//                                  [--cells warm,pinned,cold,cold-pinned]
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { constants } = require('../dist');
const { encodeWorkingSet } = require('../dist/sources/working-set');
const { makeImage, touchOrder } = require('./workload');

const { values } = parseArgs({ options: {
  workload: { type: 'string', default: 'both' },
  runs: { type: 'string', default: '3' },
  bytes: { type: 'string', default: '64' },
  cells: { type: 'string', default: 'warm,pinned,cold,cold-pinned' },
  dir: { type: 'string' },
} });
const PAGE = constants.pageSize;
const CELLS = {
  warm: { cache: 'warm', pinned: false, title: 'warm, unpinned' },
  pinned: { cache: 'warm', pinned: true, title: 'warm, pinned' },
  cold: { cache: 'cold', pinned: false, title: 'cold, unpinned' },
  'cold-pinned': { cache: 'cold', pinned: true, title: 'cold, pinned' },
};
const WORKLOADS = {
  scattered: { size: 512 << 20, touched: 0.25, maxRun: 1, programs: ['js', 'process'],
    variants: ['lazy', 'prefetch', 'prefetch+pages', 'eager', 'eager+pages', 'memory'] },
  runs: { size: 1 << 30, touched: 0.25, maxRun: 32, programs: ['process'],
    variants: ['lazy', 'prefetch', 'eager', 'precopy', 'memory'] },
};
const PROGRAM = { js: 'JS thread (this process)', process: 'another process' };

/** The image (each 8-byte word its own offset / 8), the order, a set of every page (precopy). */
function setup(dir, name, w, bin) {
  const image = path.join(dir, `${name}.bin`);
  makeImage(image, w.size);
  const pages = w.size / PAGE;
  const order = touchOrder(pages, w.touched, w.maxRun, name === 'runs' ? 2026 : 2027);
  const orderFile = path.join(dir, `${name}-order.bin`);
  fs.writeFileSync(orderFile, Buffer.from(order.buffer));
  const full = path.join(dir, `${name}-full.uffdws`);
  fs.writeFileSync(full, encodeWorkingSet({ pageSize: PAGE, sourceSize: w.size, rangeLength: w.size, generation: 1,
    runs: [{ first: 0, count: pages, write: false, age: 0 }] }));
  const env = { bin, image, order: orderFile, full, size: w.size, pageSize: PAGE, touched: order.length };
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(env));
  return env;
}

const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

/** One pass in a child (pinned: under taskset -c 0), its medians and the load around it. */
function pass(dir, workload, cache, pinned) {
  const args = ['--expose-gc', path.join(__dirname, 'working-set-pass.js'), '--dir', dir, '--workload', workload, '--cache', cache,
    '--runs', values.runs, '--bytes', values.bytes];
  const before = load();
  const t = Date.now();
  const cmd = pinned ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args];
  const out = JSON.parse(execFileSync(cmd[0], cmd[1], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 }).toString());
  return { medians: out, load: `${before} -> ${load()}`, seconds: (Date.now() - t) / 1000 };
}

const f1 = (x) => x.toFixed(1);

/** The four-cell table of one workload: finish (speed-up over lazy), then faults and first byte. */
function tables(w, cells) {
  const names = Object.keys(cells);
  const head = (first) => [`| ${first} | ${names.map((c) => CELLS[c].title).join(' | ')} |`, `|---|${names.map(() => '---:').join('|')}|`];
  const finish = head('finish, ms (speed-up over lazy)');
  const faults = head('demand faults / prefetched pages / first byte, ms');
  const checks = [];
  for (const p of w.programs) {
    for (const v of w.variants) {
      const row = names.map((c) => {
        const m = cells[c].medians[`${p} ${v}`];
        const lazy = cells[c].medians[`${p} lazy`];
        if (!m) return 'n/a';
        if (m.sum !== cells[c].medians[`${p} memory`]?.sum && cells[c].medians[`${p} memory`]) checks.push(`${p} ${v} ${c}: bytes differ`);
        return `${f1(m.finish)} (${(lazy.finish / m.finish).toFixed(2)}x)`;
      });
      finish.push(`| ${PROGRAM[p]}: ${v} | ${row.join(' | ')} |`);
      if (v === 'memory') continue;
      faults.push(`| ${PROGRAM[p]}: ${v} | ${names.map((c) => {
        const m = cells[c].medians[`${p} ${v}`];
        return m ? `${m.demandFaults} / ${m.prefetched} / ${m.ttfb.toFixed(2)}` : 'n/a';
      }).join(' | ')} |`);
    }
  }
  const loads = names.map((c) => `${CELLS[c].title}: load ${cells[c].load} (${f1(cells[c].seconds)} s)`);
  return [...finish, '', ...faults, '', `Load average (1, 5, 15 min) before -> after each cell: ${loads.join('; ')}.`,
    ...(checks.length ? ['', `**Integrity: ${checks.join('; ')}**`] : ['', 'Every variant read the same bytes as the in-memory baseline.'])].join('\n');
}

/** Against the issue's targets: >= 5x fewer demand faults than lazy; >= 2x faster warm, >= 4x cold. */
function targets(w, cells) {
  const lines = [];
  for (const p of w.programs) {
    for (const v of w.variants.filter((x) => x.startsWith('prefetch') || x.startsWith('eager'))) {
      const miss = [];
      for (const [c, cell] of Object.entries(cells)) {
        const m = cell.medians[`${p} ${v}`];
        const lazy = cell.medians[`${p} lazy`];
        const speed = lazy.finish / m.finish;
        const want = CELLS[c].cache === 'cold' ? 4 : 2;
        if (lazy.demandFaults < 5 * m.demandFaults) miss.push(`${c}: ${lazy.demandFaults}/${m.demandFaults} faults`);
        if (speed < want) miss.push(`${c}: ${speed.toFixed(2)}x < ${want}x`);
        if (m.ttfb > lazy.ttfb + 2 && v.startsWith('prefetch')) miss.push(`${c}: first byte ${m.ttfb.toFixed(2)} > lazy ${lazy.ttfb.toFixed(2)} + 2 ms`);
      }
      lines.push(`- ${PROGRAM[p]}, ${v}: ${miss.length === 0 ? 'every target met' : `missed: ${miss.join('; ')}`}`);
    }
  }
  return lines.join('\n');
}

function main() {
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-ws-'));
  const bin = path.join(dir, 'ws-touch');
  execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'c', 'ws-touch.c')]);
  const names = values.workload === 'both' ? ['scattered', 'runs'] : [values.workload];
  const cellNames = values.cells.split(',');
  const sections = [];
  try {
    for (const name of names) {
      const w = WORKLOADS[name];
      const env = setup(dir, name, w, bin);
      if (name === 'scattered') pass(dir, 'record', 'warm', false); // each program records its set once
      const cells = {};
      for (const c of cellNames) cells[c] = pass(dir, name, CELLS[c].cache, CELLS[c].pinned);
      const desc = name === 'scattered'
        ? `${w.size >> 20} MiB image; ${env.touched} single pages (${(100 * env.touched / (w.size / PAGE)).toFixed(0)}%) at scattered places, in a random order, touched at once`
        : `${w.size >> 30} GiB image; ${env.touched} pages (${(100 * env.touched / (w.size / PAGE)).toFixed(0)}%) in runs of 1-${w.maxRun} pages at scattered places, in a shuffled order`;
      sections.push(`### Workload "${name}": ${desc}`, '', tables(w, cells), '', 'Targets (issue 23):', targets(w, cells), '');
    }
    const md = ['## Working sets: lazy serve vs prefetch', '',
      `Each program reads the first ${values.bytes} bytes of each touched page. Times from the moment serve() is called. ` +
      `Median of ${values.runs} runs; variants in random order. ${os.cpus().length} CPUs. Baseline "memory": the image already in the program's memory.`,
      '', ...sections].join('\n');
    process.stdout.write(md + '\n');
    const suffix = values.bytes === '64' ? '' : `-${values.bytes}`;
    if (!values.dir) fs.writeFileSync(path.join(__dirname, `results-working-set${suffix}.md`), md + '\n');
  } finally {
    if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
