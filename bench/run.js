'use strict';
// npm run bench [-- --quick] [-- --only fault,ioctl] [-- --runs 7] [-- --no-write]
//
// Builds the C baselines (bench/c/baseline.c, bench/c/malloc-count.c) with `cc`, then runs every
// workload with this package and with a C program doing the same work, each run in its own
// process. Every round runs each variant once, in a new random order; a ratio is taken per round
// (Node ÷ the C run of the same round) and the table shows the median and the min of those
// ratios. Everything is timed directly (no "minus a control" rows), pinned to one CPU
// (taskset -c 0) and unpinned. Writes bench/results.md and bench/results.json, whose targets
// table says met or missed from this run alone (a --quick or --only run writes only with --write).
const { parseArgs } = require('node:util');
const { spawnSync, execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const GROUPS = ['fault', 'ioctl', 'dirty', 'seq', 'scale', 'rand', 'batch', 'mem', 'sys', 'sim'];
const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    write: { type: 'boolean' },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(`usage: node bench/run.js [--quick] [--only ${GROUPS.join(',')}] [--runs N] [--write|--no-write]`);
  process.exit(0);
}
const only = opts.only ? opts.only.split(',').map((s) => s.trim()) : GROUPS;
for (const g of only) {
  if (!GROUPS.includes(g)) {
    console.error(`--only: unknown group ${g} (groups: ${GROUPS.join(', ')})`);
    process.exit(2);
  }
}
const RUNS = opts.runs ? Number(opts.runs) : opts.quick ? 3 : 5;
if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error(`--runs: expected a positive integer, got ${opts.runs}`);
  process.exit(2);
}
const write = opts['no-write'] ? false : opts.write ?? (!opts.quick && !opts.only);
const MiB = 1 << 20;
const PAGE = require('./page-size');
const SIZES = opts.quick
  ? { faults: 2000, dirtyMiB: 64, seq: 16 * MiB, window: 64 * 1024, rand: 64 * MiB, randCount: 1000, ioctl: 10000, scale: 16 * MiB, batchRounds: 20, allocs: 16 * MiB, heap: 20000, sim: 1000, strace: [500, 1500] }
  : { faults: 16384, dirtyMiB: 256, seq: 16 * MiB, window: 64 * 1024, rand: 64 * MiB, randCount: 1000, ioctl: 10000, scale: 16 * MiB, batchRounds: 20, allocs: 32 * MiB, heap: 100000, sim: 2048, strace: [500, 1500] };
const BATCH_K = 16;

const here = __dirname;
const buildDir = path.join(here, 'build');
const baseline = path.join(buildDir, 'baseline');
const dirtyScan = path.join(buildDir, 'dirty-scan');
const mallocCount = path.join(buildDir, 'malloc-count.so');
const work = path.join(here, 'node-work.js');

function build() {
  fs.mkdirSync(buildDir, { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', baseline, path.join(here, 'c', 'baseline.c')], { stdio: 'inherit' });
  execFileSync('cc', ['-O2', '-Wall', '-shared', '-fPIC', '-o', mallocCount, path.join(here, 'c', 'malloc-count.c')], { stdio: 'inherit' });
  execFileSync('cc', ['-O2', '-Wall', '-o', dirtyScan, path.join(here, 'c', 'dirty-scan.c')], { stdio: 'inherit' });
}

const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const PINS = hasTaskset ? ['one', 'split'] : ['split'];
const PIN_LABEL = { split: 'unpinned', one: 'pinned (taskset -c 0)' };
const canDropCaches = (() => {
  try {
    fs.accessSync('/proc/sys/vm/drop_caches', fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
})();

function command(v, pin) {
  const bin = { c: baseline, 'c-dirty': dirtyScan }[v.kind];
  const cmd = bin ? [bin, ...v.args] : [process.execPath, work, ...v.args];
  return pin === 'one' ? ['taskset', '-c', '0', ...cmd] : cmd;
}

/** Runs one measurement process; returns its last stdout line as JSON. */
function runOne(v, pin) {
  if (v.cold) dropCaches();
  const full = command(v, pin);
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...v.env } });
  if (r.status !== 0) {
    throw new Error(`${full.join(' ')} failed (status ${r.status}, signal ${r.signal}): ${r.stderr}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** The page cache emptied: a cold start reads the file from the disk. */
function dropCaches() {
  spawnSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

function shuffle(a) {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [b[i], b[j]] = [b[j], b[i]];
  }
  return b;
}

const median = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length === 0 ? NaN : a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};

/** Every variant once per round, in a new random order each round. Returns { id: [result per round] }. */
function rounds(title, variants, pin, runs = RUNS) {
  const samples = Object.fromEntries(variants.map((v) => [v.id, []]));
  process.stdout.write(`  ${title} [${PIN_LABEL[pin]}] `);
  for (let r = 0; r < runs; r++) {
    for (const v of shuffle(variants)) samples[v.id].push(runOne(v, pin));
    process.stdout.write('.');
  }
  process.stdout.write('\n');
  return samples;
}

/** Per-round ratios of `key` (variant ÷ base, same round): { median, min, max, all }. */
function ratios(samples, id, base, key, f = (x) => x[key]) {
  const all = samples[id].map((x, r) => f(x) / f(samples[base][r]));
  return { median: median(all), min: Math.min(...all), max: Math.max(...all), all };
}

const results = { machine: machine(), runs: RUNS, quick: opts.quick, sizes: SIZES, groups: {} };
const md = [];
const targetRows = [];

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  let meltdown = '';
  try {
    meltdown = fs.readFileSync('/sys/devices/system/cpu/vulnerabilities/meltdown', 'utf8').trim();
  } catch { /* not Linux, or no sysfs */ }
  return {
    cpu: model, cpus: os.cpus().length, kernel: `${os.type()} ${os.release()}`, node: process.version,
    date: new Date().toISOString(), memoryGiB: Math.round(os.totalmem() / 2 ** 30), loadavg: os.loadavg(),
    meltdown, pcid: /\bpcid\b/.test(cpuinfo),
  };
}

const f1 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2));
const us = (ns) => (ns === undefined || Number.isNaN(ns) ? '—' : (ns / 1000).toFixed(1));
const rr = (r) => `${f2(r.median)}× (min ${f2(r.min)}×)`;

function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function emit(title, text, note) {
  console.log(`\n### ${title}\n${text}\n${note ? `\n${note}\n` : ''}`);
  md.push(`### ${title}\n\n${text}\n${note ? `\n${note}\n` : ''}`);
}

/** A target, judged on the median of the per-round ratios. */
function target(name, value, met, note = '') {
  targetRows.push([name, value, met === null ? '—' : met ? '**met**' : '**missed**', note]);
}

// ---- 1. one fault, timed where it happens ----------------------------------------------------

function faultGroup() {
  const N = String(SIZES.faults);
  const variants = [
    { id: 'c', label: 'C: poll + read + UFFDIO_COPY thread; the main thread loads', kind: 'c', args: ['fault', N] },
    { id: 'c-relay', label: 'C: the same, with a reader thread relaying to a second thread (the shape of the hop)', kind: 'c', args: ['fault', N],
      env: { BASELINE_RELAY: '1' } },
    { id: 'worker', label: 'Worker: readSync() + copy(); the main thread loads', kind: 'node', args: ['fault', N, 'worker'] },
    { id: 'js', label: "main thread: on('pagefault') + copy(), read on the JS thread's loop; a Worker loads", kind: 'node', args: ['fault', N, 'js'] },
    { id: 'js-hop', label: "main thread: on('pagefault') + copy(), the reader thread's hop (before); a Worker loads", kind: 'node',
      args: ['fault', N, 'js-hop'] },
    { id: 'serve', label: 'native serve (PageSource.buffer, one page); the JS thread loads', kind: 'node', args: ['fault', N, 'serve'] },
  ];
  const out = {};
  for (const pin of PINS) {
    const s = rounds(`fault ×${N}`, variants, pin);
    const rows = variants.map((v) => {
      const r = ratios(s, v.id, 'c', 'nsPerFault');
      const cpu = ratios(s, v.id, 'c', 'cpuNsPerFault');
      return [v.label, us(median(s[v.id].map((x) => x.nsPerFault))), v.id === 'c' ? '1' : f2(r.median), v.id === 'c' ? '1' : f2(r.min),
        us(median(s[v.id].map((x) => x.cpuNsPerFault))), v.id === 'c' ? '1' : f2(cpu.median), f2(median(s[v.id].map((x) => x.ctxPerFault)))];
    });
    out[pin] = { samples: s, ratios: Object.fromEntries(variants.map((v) => [v.id, ratios(s, v.id, 'c', 'nsPerFault')])),
      cpuRatios: Object.fromEntries(variants.map((v) => [v.id, ratios(s, v.id, 'c', 'cpuNsPerFault')])) };
    for (const v of variants) {
      if (s[v.id].some((x) => !x.ok)) throw new Error(`fault ${v.id}: the loads read wrong bytes`);
    }
    emit(`1. One fault, answered by a handler thread — ${PIN_LABEL[pin]}`,
      table(['handler', 'µs per fault (median)', '× C, median of rounds', '× C, min', 'CPU µs per fault', '× C, CPU', 'context switches per fault'], rows),
      `${N} loads of one byte from ${N} missing pages, timed in the thread that faults (total ÷ faults). ` +
      'CPU and context switches: the whole process\'s (getrusage, every thread) during the loads, ÷ faults; CPU time is ' +
      'what a busy machine does not stretch (pinned, one CPU runs every thread, so on a quiet machine it is the time).');
    const o = out[pin].ratios;
    target(`Worker handler (readSync + copy) ≤ 1.2× C per fault — ${PIN_LABEL[pin]}`, rr(o.worker), o.worker.median <= 1.2);
    const jsMax = pin === 'one' ? 1.5 : 1.2;
    const cpuO = out[pin].cpuRatios;
    target(`on('pagefault') ≤ ${jsMax}× C per fault — ${PIN_LABEL[pin]}`, rr(o.js), o.js.median <= jsMax,
      `CPU time ${f2(cpuO.js.median)}×; the reader thread's hop: ${rr(o['js-hop'])} (CPU ${f2(cpuO['js-hop'].median)}×)`);
    target(`native serve ≤ 1.1× C per fault, direct touch — ${PIN_LABEL[pin]}`, rr(o.serve), o.serve.median <= 1.1);
  }
  results.groups.fault = out;
}

// ---- 2. one ioctl ------------------------------------------------------------------------------

const TOUCHED = [0, 128, 512];

function ioctlGroup() {
  const v = [{ id: 'node', kind: 'node', args: ['ioctl2', String(SIZES.ioctl)] },
    ...TOUCHED.map((k) => ({ id: `touch-${k}`, kind: 'c', args: ['wake-touch', String(SIZES.ioctl), String(k)] }))];
  const out = {};
  for (const pin of PINS) {
    const all = rounds(`ioctl ${SIZES.ioctl} calls per kind`, v, pin);
    const s = all.node;
    // What touching k pages between two system calls adds to one (beyond the touches themselves).
    const touchCost = (k) => median(all[`touch-${k}`].map((x) => x.wakeTouchNs - x.touchNs));
    const copy = s.map((x) => x.copy / x.cCopy);
    const wake = s.map((x) => x.wake - x.cWake);
    const existOk = s.map((x) => x.existOk / x.cExist);
    const existThrow = s.map((x) => x.existThrow / x.cExist);
    const m = (k) => median(s.map((x) => x[k]));
    // The same in CPU time (getrusage around each block): what a busy machine does not stretch.
    const c = (k) => median(s.map((x) => x.cpu[k]));
    const cpuRatio = (k, base) => `${f2(median(s.map((x) => x.cpu[k] / x.cpu[base])))}×`;
    const cpuWake = median(s.map((x) => x.cpu.wake - x.cpu.cWake));
    out[pin] = { samples: s, copyRatio: median(copy), copyRatioMin: Math.min(...copy), wakeOverheadNs: median(wake), wakeOverheadMinNs: Math.min(...wake),
      existOkRatio: median(existOk), existThrowRatio: median(existThrow), cpuWakeOverheadNs: cpuWake };
    emit(`2. One ioctl from JavaScript against the same ioctl in a C loop in the same process — ${PIN_LABEL[pin]}`,
      table(['call', 'ns per call (median)', 'vs the C loop, median of rounds', 'min', 'CPU ns per call', 'vs the C loop, CPU'], [
        ['C loop: UFFDIO_COPY 4 KiB DONTWAKE, fresh page', f1(m('cCopy')), '1', '1', f1(c('cCopy')), '1'],
        ['uffd.copy(addr, src, { dontWake: true })', f1(m('copy')), `${f2(median(copy))}×`, `${f2(Math.min(...copy))}×`, f1(c('copy')), cpuRatio('copy', 'cCopy')],
        ['C loop: UFFDIO_WAKE of one page, nobody waiting', f1(m('cWake')), '—', '—', f1(c('cWake')), '—'],
        ['uffd.wake({ start, length: 4096 })', f1(m('wake')), `+${f1(median(wake))} ns`, `+${f1(Math.min(...wake))} ns`, f1(c('wake')), `+${f1(cpuWake)} ns`],
        ['C loop: UFFDIO_COPY onto a present page (EEXIST), then UFFDIO_WAKE', f1(m('cExist')), '1', '1', f1(c('cExist')), '1'],
        ["uffd.copy(addr, src, { errorOnExist: false }) onto a present page (it wakes)", f1(m('existOk')), `${f2(median(existOk))}×`,
          `${f2(Math.min(...existOk))}×`, f1(c('existOk')), cpuRatio('existOk', 'cExist')],
        ['uffd.copy() onto a present page: the thrown UffdError caught, then uffd.wake() (before)', f1(m('existThrow')),
          `${f2(median(existThrow))}×`, `${f2(Math.min(...existThrow))}×`, f1(c('existThrow')), cpuRatio('existThrow', 'cExist')],
        ['uffd.noop() (a binding call that does nothing)', f1(m('noop')), '—', '—', f1(c('noop')), '—'],
        ['uffd.wake() with the binding call replaced by an empty JS function (lib/ alone)', f1(m('wakeNoSyscall')), '—', '—', '—', '—'],
        ...TOUCHED.map((k) => [`C process: UFFDIO_WAKE, then ${k} other pages touched (time of the touches alone taken out)`,
          f1(touchCost(k)), '—', '—', '—', '—']),
      ]),
      'The C loop is the addon\'s benchIoctlLoop: the same ioctls in C, inside the Node process (same fd table, same ' +
      'threads, same address space), in blocks of 2000 calls whose order is shuffled each round. CPU: the process\'s CPU ' +
      'time (getrusage) around each block, which other processes on a busy machine do not stretch. The last rows show what ' +
      'touching more memory between two system calls costs the next one (caches refilled; and where the kernel isolates ' +
      'page tables without PCID, the TLB too: see the header); JavaScript (V8\'s code, stack and heap, the binding) ' +
      'touches more than a C loop does. docs/performance.md has the breakdown.');
    out[pin].touchCostNs = Object.fromEntries(TOUCHED.map((k) => [k, touchCost(k)]));
    target(`copy() ≤ 1.3× the C ioctl loop — ${PIN_LABEL[pin]}`, rr({ median: median(copy), min: Math.min(...copy) }), median(copy) <= 1.3);
    target(`binding overhead per wake() ≤ 100 ns over C — ${PIN_LABEL[pin]}`, `${f1(median(wake))} ns (min ${f1(Math.min(...wake))} ns)`, median(wake) <= 100,
      `CPU time: +${f1(cpuWake)} ns`);
    target(`copy() meeting EEXIST with errorOnExist: false ≤ 2× C — ${PIN_LABEL[pin]}`, rr({ median: median(existOk), min: Math.min(...existOk) }),
      median(existOk) <= 2, `thrown and caught (before): ${f2(median(existThrow))}×`);
  }
  results.groups.ioctl = out;
}

// ---- 2b. dirty pages ------------------------------------------------------------------------------

function dirtyGroup() {
  const mib = SIZES.dirtyMiB;
  const variants = [
    // 50 scans a process: one scan of 256 MiB takes about 0.2 ms, too short to time alone.
    { id: 'c', kind: 'c-dirty', args: ['scan', String(mib << 20), '50', '50'] },
    { id: 'objects', kind: 'node', args: ['dirty', String(mib), '50', '50', 'objects'] },
    { id: 'offsets', kind: 'node', args: ['dirty', String(mib), '50', '50', 'offsets'] },
  ];
  const out = {};
  for (const pin of PINS) {
    const s = rounds(`dirty ${mib} MiB`, variants, pin);
    const perGiB = (x) => x.nsPerScan / 1e6 / (mib / 1024);
    const row = (id, label) => {
      const r = ratios(s, id, 'c', null, (x) => x.nsPerScan);
      return [label, f2(median(s[id].map(perGiB))), id === 'c' ? '1' : `${f2(r.median)}×`, id === 'c' ? '1' : `${f2(r.min)}×`];
    };
    out[pin] = { samples: s, offsets: ratios(s, 'offsets', 'c', null, (x) => x.nsPerScan), objects: ratios(s, 'objects', 'c', null, (x) => x.nsPerScan) };
    emit(`2b. dirtyPages() against a C PAGEMAP_SCAN loop — ${PIN_LABEL[pin]}`,
      table(['scan', 'ms per GiB (median)', '× C, median of rounds', 'min'], [
        row('c', 'C: PAGEMAP_SCAN walk (bench/c/dirty-scan.c)'),
        row('offsets', 'uffd.dirtyOffsets(range): one Float64Array'),
        row('objects', 'uffd.dirtyPages(range): an object and a bigint per run'),
      ]),
      `A ${mib} MiB WP_ASYNC range, armed, with 5% of its pages written (scattered: about one run per written page), ` +
      'scanned without reset, 50 scans per process.');
    target(`dirtyOffsets() ≤ 2× the C PAGEMAP_SCAN loop — ${PIN_LABEL[pin]}`, rr(out[pin].offsets), out[pin].offsets.median <= 2,
      `dirtyPages() objects: ${rr(out[pin].objects)}`);
  }
  results.groups.dirty = out;
}

// ---- 3. sequential lazy load, equal fault counts ---------------------------------------------

function makeFile(length) {
  const file = path.join(os.tmpdir(), `uffd-bench-${process.pid}.bin`);
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(4 * MiB);
  for (let off = 0; off < length; off += chunk.length) {
    crypto.randomFillSync(chunk);
    fs.writeSync(fd, chunk, 0, Math.min(chunk.length, length - off));
  }
  fs.closeSync(fd);
  return file;
}

function seqGroup() {
  const L = SIZES.seq;
  const W = SIZES.window;
  const file = makeFile(L);
  try {
    const variants = [];
    for (const cold of canDropCaches ? [false, true] : [false]) {
      const c = cold ? 'cold' : 'warm';
      variants.push(
        { id: `c-page-${c}`, kind: 'c', args: ['seq-uffd', file, String(L), String(PAGE)], cold },
        { id: `serve-page-${c}`, kind: 'node', args: ['seq-direct', file, String(L), String(PAGE)], cold },
        { id: `c-win-${c}`, kind: 'c', args: ['seq-uffd', file, String(L), String(W)], cold },
        { id: `serve-win-${c}`, kind: 'node', args: ['seq-direct', file, String(L), String(W)], cold });
    }
    variants.push({ id: 'zero-c', kind: 'c', args: ['seq-zero', String(L)] });
    fs.readFileSync(file); // warm for the warm variants (a cold one drops the cache first)
    const out = {};
    for (const pin of PINS) {
      const s = rounds(`seq ${L / MiB} MiB`, variants, pin);
      const rows = [];
      const gbps = (id) => median(s[id].map((x) => x.bytes / x.ns));
      for (const c of canDropCaches ? ['warm', 'cold'] : ['warm']) {
        for (const [w, label] of [['page', '4 KiB per fault'], ['win', `${W / 1024} KiB per fault`]]) {
          const r = ratios(s, `serve-${w}-${c}`, `c-${w}-${c}`, 'ns');
          rows.push([`${label}, ${c} page cache`, f2(gbps(`c-${w}-${c}`)), f2(gbps(`serve-${w}-${c}`)),
            `${median(s[`c-${w}-${c}`].map((x) => x.faults))} / ${median(s[`serve-${w}-${c}`].map((x) => x.faults))}`,
            f2(r.median), f2(r.min)]);
          out[pin] = out[pin] ?? { samples: s, ratios: {} };
          out[pin].ratios[`${w}-${c}`] = r;
        }
      }
      rows.push(['(kernel demand-zero faults, C)', f2(gbps('zero-c')), '—', '—', '—', '—']);
      emit(`3. Sequential lazy load of ${L / MiB} MiB from a file, equal fault counts — ${PIN_LABEL[pin]}`,
        table(['windows', 'C GB/s', 'serve GB/s', 'faults C / serve', 'serve time × C, median of rounds', 'min'], rows),
        'Both sides map the file and copy from the mapping (PageSource.file, mapped; baseline.c seq-uffd), with the ' +
        'same fixed window per fault; the faulting thread memcpy()s 4 MiB at a time into the region (Node: the JS ' +
        'thread itself, Uint8Array.set). Cold: `echo 3 > /proc/sys/vm/drop_caches` before the run' +
        (canDropCaches ? '.' : ' (not writable here: cold runs skipped).'));
      const r = out[pin].ratios;
      target(`native serve sequential ≤ 1.1× C, same windows, warm — ${PIN_LABEL[pin]}`,
        `4 KiB ${rr(r['page-warm'])}; ${W / 1024} KiB ${rr(r['win-warm'])}`, r['page-warm'].median <= 1.1 && r['win-warm'].median <= 1.1);
      if (canDropCaches) {
        target(`native serve sequential ≤ 1.1× C, same windows, cold — ${PIN_LABEL[pin]}`,
          `4 KiB ${rr(r['page-cold'])}; ${W / 1024} KiB ${rr(r['win-cold'])}`, r['page-cold'].median <= 1.1 && r['win-cold'].median <= 1.1);
      }
    }
    results.groups.seq = out;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

// ---- 4. scaling --------------------------------------------------------------------------------

function scaleGroup() {
  const L = String(SIZES.scale);
  const threads = [1, 2, 4];
  const out = {};
  for (const pin of PINS) {
    const variants = [];
    for (const t of threads) {
      for (const mode of ['shared', 'per']) {
        variants.push({ id: `c-${mode}-${t}`, kind: 'c', args: ['scale', String(t), mode, L] });
        variants.push({ id: `node-${mode}-${t}`, kind: 'node', args: ['scale', String(t), mode, L] });
      }
    }
    const s = rounds(`scale ${SIZES.scale / MiB} MiB`, variants, pin);
    const fps = (id) => median(s[id].map((x) => x.faultsPerSec));
    const rows = [];
    out[pin] = { samples: s, growth: {} };
    for (const mode of ['shared', 'per']) {
      for (const who of ['c', 'node']) {
        // Throughput at 4 threads ÷ at 1, per round: "no drop" is >= 1.
        const g = ratios(s, `${who}-${mode}-4`, `${who}-${mode}-1`, 'faultsPerSec');
        out[pin].growth[`${who}-${mode}`] = g;
        rows.push([`${who === 'c' ? 'C' : 'Node serve'}: ${mode === 'shared' ? 'one uffd shared' : 'one uffd per thread'}`,
          ...threads.map((t) => `${Math.round(fps(`${who}-${mode}-${t}`) / 1000)}k`), f2(g.median), f2(g.min)]);
      }
    }
    emit(`4. Scaling: faults per second, one page per fault — ${PIN_LABEL[pin]}`,
      table(['faulting threads →', '1', '2', '4', '4 threads ÷ 1, median of rounds', 'min'], rows),
      'Node: native serve (PageSource.buffer, readahead: false), the faulting threads are the libuv pool running ' +
      'region.write of 4 MiB pieces; C: the same memcpy from plain threads, a poll + read + UFFDIO_COPY handler per uffd.');
    for (const mode of ['shared', 'per']) {
      const n = out[pin].growth[`node-${mode}`];
      const c = out[pin].growth[`c-${mode}`];
      target(`no throughput drop from 1 to 4 threads, ${mode === 'shared' ? 'shared uffd' : 'uffd per thread'} — ${PIN_LABEL[pin]}`,
        `Node ${f2(n.median)}× (min ${f2(n.min)}×); C ${f2(c.median)}×`, n.median >= 1.0,
        c.median < 1.0 ? 'C drops too' : '');
    }
  }
  results.groups.scale = out;
}

// ---- 5. random faults through region.read -------------------------------------------------------

function randGroup() {
  const L = String(SIZES.rand);
  const N = String(SIZES.randCount);
  const variants = [
    { id: 'c-pool', label: 'C: read through a pool thread (condition variable there, eventfd back)', kind: 'c', args: ['rand-uffd', L, N, 'pool'] },
    { id: 'serve', label: 'native serve, one page', kind: 'node', args: ['rand', L, N, 'serve'] },
    { id: 'js', label: "on('pagefault') + copy()", kind: 'node', args: ['rand', L, N, 'js'] },
  ];
  const out = {};
  for (const pin of PINS) {
    const s = rounds(`rand ${N} reads`, variants, pin);
    const rows = variants.map((v) => {
      const r = ratios(s, v.id, 'c-pool', 'p50');
      return [v.label, us(median(s[v.id].map((x) => x.p50))), us(median(s[v.id].map((x) => x.p99))),
        v.id === 'c-pool' ? '1' : f2(r.median), v.id === 'c-pool' ? '1' : f2(r.min)];
    });
    out[pin] = { samples: s };
    emit(`5. Random 4 KiB faults through region.read (the thread pool) — ${PIN_LABEL[pin]}`,
      table(['handler', 'p50 µs', 'p99 µs', 'p50 × C, median of rounds', 'min'], rows),
      'Each `await region.read(page, 4096)` timed from JavaScript: a hop to the pool, the fault, a hop back. The C ' +
      'stand-in hands each read to a worker thread the same way (what libuv costs).');
  }
  results.groups.rand = out;
}

// ---- 6. batching --------------------------------------------------------------------------------

function batchGroup() {
  const K = String(BATCH_K);
  const R = String(SIZES.batchRounds);
  const env = { UV_THREADPOOL_SIZE: String(BATCH_K + 4) };
  const variants = [
    { id: 'c-wake', kind: 'c', args: ['batch', K, R, 'wake'] },
    { id: 'c-dontwake', kind: 'c', args: ['batch', K, R, 'dontwake'] },
    { id: 'node-wake', kind: 'node', args: ['batch', K, R, 'wake'], env },
    { id: 'node-dontwake', kind: 'node', args: ['batch', K, R, 'dontwake'], env },
  ];
  const out = {};
  for (const pin of PINS) {
    const s = rounds(`batch K=${K}`, variants, pin);
    const m = (id) => median(s[id].map((x) => x.nsPerRound));
    const b = (who) => ratios(s, `${who}-dontwake`, `${who}-wake`, 'nsPerRound');
    out[pin] = { samples: s };
    emit(`6. Batching: ${K} pending faults answered (µs per round) — ${PIN_LABEL[pin]}`,
      table(['handler', 'copy that wakes, per page', 'copy DONTWAKE ×K + one wake', 'batched ÷ per page, median of rounds'], [
        ['C', us(m('c-wake')), us(m('c-dontwake')), f2(b('c').median)],
        ['Node (uffd.copy / uffd.wake)', us(m('node-wake')), us(m('node-dontwake')), f2(b('node').median)],
      ]),
      `${K} threads wait on ${K} adjacent pages; timed from the first answer until every faulting thread has run ` +
      'again (C: joined; Node: every region.read promise resolved, which adds the pool → JS hop).');
  }
  results.groups.batch = out;
}

// ---- 7. memory ----------------------------------------------------------------------------------

function memGroup() {
  const counter = path.join(os.tmpdir(), `uffd-bench-malloc-${process.pid}`);
  const samples = [];
  try {
    for (let r = 0; r < Math.min(RUNS, 3); r++) {
      fs.rmSync(counter, { force: true });
      samples.push(runOne({ kind: 'node', args: ['allocs', String(SIZES.allocs)],
        env: { LD_PRELOAD: mallocCount, MALLOC_COUNT_FILE: counter } }, 'split'));
    }
  } finally {
    fs.rmSync(counter, { force: true });
  }
  // The handler paths of group 1, counted around the loads (the whole process: V8's own work,
  // a scavenge's, included).
  const handlerPaths = [['worker', 'Worker readSync() + copy()'], ['js', "on('pagefault') + copy(), read on the JS thread's loop"]];
  const handlerMallocs = {};
  try {
    for (const [mode] of handlerPaths) {
      handlerMallocs[mode] = [];
      for (let r = 0; r < Math.min(RUNS, 3); r++) {
        fs.rmSync(counter, { force: true });
        handlerMallocs[mode].push(runOne({ kind: 'node', args: ['fault', String(SIZES.faults), mode],
          env: { LD_PRELOAD: mallocCount, MALLOC_COUNT_FILE: counter } }, 'split').mallocsPerFault);
      }
    }
  } finally {
    fs.rmSync(counter, { force: true });
  }
  const heap = [];
  for (let r = 0; r < Math.min(RUNS, 3); r++) heap.push(runOne({ kind: 'node', args: ['heap', String(SIZES.heap)] }, 'split'));
  const per = median(samples.map((x) => x.perFault));
  const worker = median(heap.map((x) => x.workerHeapBytesPerFault));
  const copy = median(heap.map((x) => x.copyHeapBytesPerCall));
  const copyBare = median(heap.map((x) => x.copyBareHeapBytesPerCall));
  const copySpan = median(heap.map((x) => x.copySpanBytesPerCall));
  const copyBareSpan = median(heap.map((x) => x.copyBareSpanBytesPerCall));
  results.groups.mem = { samples, heap, handlerMallocs, perFault: per, workerHeapBytesPerFault: worker, copyHeapBytesPerCall: copy,
    copyBareHeapBytesPerCall: copyBare };
  emit('7. Memory per fault', table(['measure', 'value (median)', 'how'], [
    ['malloc-family calls per fault, native serve', f2(per), `LD_PRELOAD counter, ${samples[0].faults} faults, minus the same writes over present pages`],
    ...handlerPaths.map(([mode, name]) => [`malloc-family calls per fault, ${name}`, f2(median(handlerMallocs[mode])),
      `LD_PRELOAD counter around group 1's ${SIZES.faults} loads (the whole process)`]),
    ['V8 heap bytes per fault, Worker readSync() + copy()', f1(worker), `${heap[0].heapFaults} of ${heap[0].faults} faults (spans with a scavenge left out)`],
    ['V8 heap bytes per copy(addr, src, { dontWake: true }) call (precomputed bigint addresses)', f1(copy), 'used heap around spans of 1000 calls (spans with a scavenge left out); ' +
      `median span ${f1(copySpan)} (the mean includes the compiler's work while copy() warms up)`],
    ['V8 heap bytes per copy(addr, src) call, no options object (the README\'s form)', f1(copyBare), `the same; median span ${f1(copyBareSpan)}`],
  ]), 'readSync() returns an array of event objects with bigint addresses (the contract), which is what a fault costs on ' +
    'the V8 heap there; copy() itself allocates nothing. The loop read\'s one malloc per read is Node-API\'s: ' +
    'napi_open_handle_scope allocates its scope object (docs/performance.md).');
  target('no malloc per fault on the native serve path', f2(per), per < 0.05);
  target('no V8 heap allocation per copy() call', `${f1(copy)} bytes; without options ${f1(copyBare)}`, Math.max(copy, copyBare) < 8);
  target('no V8 heap allocation per fault, Worker path (readSync + copy)', `${f1(worker)} bytes`, worker < 8,
    'readSync returns new event objects (bigint address) by contract');
}

// ---- 8. syscalls per fault ----------------------------------------------------------------------

function sysGroup() {
  if (spawnSync('strace', ['-V']).status !== 0) {
    emit('8. System calls per fault', 'Skipped: strace is not installed (apt-get install strace).');
    return;
  }
  const [n1, n2] = SIZES.strace;
  const paths = [
    { id: 'c', label: 'C handler thread', kind: 'c', args: (n) => ['fault', String(n)] },
    { id: 'c-relay', label: 'C handler thread relaying to a second thread', kind: 'c', args: (n) => ['fault', String(n)], env: { BASELINE_RELAY: '1' } },
    { id: 'worker', label: 'Worker readSync() + copy()', kind: 'node', args: (n) => ['fault', String(n), 'worker'] },
    { id: 'js', label: "on('pagefault') + copy(), read on the JS thread's loop", kind: 'node', args: (n) => ['fault', String(n), 'js'] },
    { id: 'js-hop', label: "on('pagefault') + copy(), the reader thread's hop (before)", kind: 'node', args: (n) => ['fault', String(n), 'js-hop'] },
    { id: 'serve', label: 'native serve', kind: 'node', args: (n) => ['fault', String(n), 'serve'] },
  ];
  const counts = (p, n) => {
    const file = path.join(os.tmpdir(), `uffd-bench-strace-${process.pid}.txt`);
    const cmd = command({ kind: p.kind, args: p.args(n) }, 'split');
    const r = spawnSync('strace', ['-c', '-f', '-o', file, ...cmd], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...p.env } });
    if (r.status !== 0) throw new Error(`strace ${cmd.join(' ')}: ${r.stderr}`);
    const text = fs.readFileSync(file, 'utf8');
    fs.rmSync(file, { force: true });
    const calls = {};
    for (const line of text.split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
      if (m && m[2] !== 'total') calls[m[2]] = Number(m[1]);
    }
    return calls;
  };
  const rows = [];
  const out = {};
  for (const p of paths) {
    // Counted at two fault counts: the difference is what the faults cost, whatever start-up costs.
    const a = counts(p, n1);
    const b = counts(p, n2);
    const per = {};
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = ((b[k] ?? 0) - (a[k] ?? 0)) / (n2 - n1);
      if (d >= 0.05) per[k] = d;
    }
    const total = Object.values(per).reduce((x, y) => x + y, 0);
    out[p.id] = { perFault: per, total };
    rows.push([p.label, f2(total), Object.entries(per).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${f2(v)}`).join(', ')]);
  }
  const ctx = results.groups.fault;
  const ctxRow = (id) => (ctx ? PINS.map((pin) => f2(median(ctx[pin].samples[id].map((x) => x.ctxPerFault)))).join(' / ') : '—');
  for (let i = 0; i < rows.length; i++) rows[i].splice(2, 0, ctxRow(paths[i].id));
  results.groups.sys = out;
  emit('8. System calls and context switches per fault', table(['path', 'syscalls per fault', `context switches per fault (${PINS.map((p) => PIN_LABEL[p]).join(' / ')})`, 'by call'], rows),
    `strace -c -f of the group 1 workloads at ${n1} and ${n2} faults; per fault = the difference ÷ ${n2 - n1}, ` +
    'so start-up calls cancel. Context switches from group 1 (getrusage of the whole process).');
}

// ---- 9. simulator -------------------------------------------------------------------------------

function simGroup() {
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const r = runOne({ kind: 'node', args: ['sim', String(SIZES.sim)] }, 'split');
    if (r.unavailable) {
      emit('9. Simulator', `Skipped: the simulator backend is not available in this build (${r.unavailable}).`);
      return;
    }
    samples.push(r);
  }
  results.groups.sim = { samples };
  emit('9. Simulator', table(['measure', 'median'], [
    ["simulated faults per second (region.read of fresh pages, JS 'pagefault' handler calling copy)", `${Math.round(median(samples.map((x) => x.faultsPerSec)) / 1000)}k`],
    ['simulated faults per second, serve(PageSource.buffer, { readahead: false })', `${Math.round(median(samples.map((x) => x.serveFaultsPerSec)) / 1000)}k`],
    ['region.read of one present page (µs)', us(median(samples.map((x) => x.presentReadNs)))],
  ]));
}

// ---- main -------------------------------------------------------------------------------------

function main() {
  const t0 = Date.now();
  build();
  const m = results.machine;
  console.log(`userfaultfd bench: ${m.cpu}, ${m.cpus} CPUs, ${m.kernel}, node ${m.node}, ${m.date}, load ${m.loadavg.map(f2).join(' ')}`);
  console.log(`${RUNS} rounds, variants in random order each round${opts.quick ? ' (--quick)' : ''}; groups: ${only.join(', ')}`);
  const fns = { fault: faultGroup, ioctl: ioctlGroup, dirty: dirtyGroup, seq: seqGroup, scale: scaleGroup, rand: randGroup, batch: batchGroup, mem: memGroup, sys: sysGroup, sim: simGroup };
  for (const g of GROUPS) if (only.includes(g)) fns[g]();
  results.seconds = Math.round((Date.now() - t0) / 1000);
  results.targets = targetRows.map(([name, value, status, note]) => ({ target: name, value, status, note }));
  const summary = `## Targets\n\nJudged on the median of the per-round ratios of this run.\n\n${table(['target', 'this run', '', 'note'], targetRows)}`;
  console.log(`\n${summary}\n\n(${results.seconds} s)`);
  if (write) {
    const header = `# Benchmark results\n\nGenerated by \`npm run bench\` (bench/run.js) on ${m.date}; every figure below comes from ` +
      `this one run (raw samples in results.json). Machine: ${m.cpu}, ${m.cpus} CPUs, ${m.memoryGiB} GiB, ${m.kernel}, ` +
      `Node ${m.node}; load average at the start ${m.loadavg.map(f2).join(' ')}; Meltdown: ${m.meltdown || 'unknown'}` +
      `${m.pcid ? '' : ' (no PCID: every system call flushes the TLB)'}. ${RUNS} rounds, the variants in a new random ` +
      `order each round, ${results.seconds} s in all.\n\n`;
    fs.writeFileSync(path.join(here, 'results.md'), `${header}${summary}\n\n${md.join('\n')}`);
    fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify(results, null, 1) + '\n');
    console.log('wrote bench/results.md and bench/results.json');
  }
}

main();
