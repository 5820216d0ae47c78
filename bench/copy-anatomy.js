'use strict';
// npm run bench:anatomy [-- --runs 5] [-- --calls 100000] [-- --no-write]
//
// Where the time of one copy() (and wake()) goes, against the same ioctl in a C loop inside
// the same process (the addon's benchIoctlLoop). Each variant runs in its own process, pinned to
// one CPU, under `perf record -e cpu-clock` (a software clock: it works in VMs without a PMU),
// with sampling switched on only around the timed loop (perf --control). The samples are sorted
// by where they fell (the kernel, libc's ioctl wrapper, the addon, Node-API and V8's runtime,
// JIT-compiled JavaScript) and turned into ns per call: samples ÷ frequency ÷ calls. CPU time,
// not wall time: a loaded machine stretches the wall clock, not this. Variants in a new random
// order each round; medians of the rounds. Writes bench/results-copy-anatomy.md.
const { parseArgs } = require('node:util');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { median, shuffle } = require('./workload');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    calls: { type: 'string', default: '100000' },
    child: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});
const PAGE = require('./page-size');
const FREQ = 20000;

// ---- the child: one variant's timed loop -------------------------------------------------------

function child(variant, calls) {
  const { Userfaultfd, Region } = require('../dist');
  const { binding } = require('../dist/base/native');
  const uffd = Userfaultfd.open();
  const src = new Uint8Array(Region.map(PAGE).buffer).fill(1);
  const opts = { dontWake: true };
  const wakeRanges = Array.from({ length: 64 }, () => null);
  const wakeRegion = Region.map(64 * PAGE);
  uffd.register(wakeRegion);
  for (let i = 0; i < 64; i++) wakeRanges[i] = { start: wakeRegion.address + BigInt(i * PAGE), length: PAGE };
  const bound = uffd.fastCopy; // the binding alone: what copy() calls after its checks
  const boundWake = uffd.fastWake;
  const loops = {
    'c-copy': (a) => binding.benchIoctlLoop(uffd.fd, 0, a[0], a.length, src),
    'binding-copy': (a) => { for (let i = 0; i < a.length; i++) bound(a[i], src, 1, false); },
    'copy': (a) => { for (let i = 0; i < a.length; i++) uffd.copy(a[i], src, opts); },
    'c-wake': (a) => binding.benchIoctlLoop(uffd.fd, 1, wakeRegion.address, a.length),
    'binding-wake': (a) => { for (let i = 0; i < a.length; i++) boundWake(wakeRanges[i & 63].start, PAGE); },
    'wake': (a) => { for (let i = 0; i < a.length; i++) uffd.wake(wakeRanges[i & 63]); },
  };
  const run = loops[variant];
  const fresh = (n) => {
    const r = Region.map(n * PAGE);
    uffd.register(r);
    return { r, a: Array.from({ length: n }, (_, i) => r.address + BigInt(i * PAGE)) };
  };
  const warm = fresh(5000); // compiled before the timed loop
  run(warm.a);
  const timed = fresh(calls);
  const ctl = fs.openSync(process.env.PERF_CTL, 'w');
  const ack = fs.openSync(process.env.PERF_ACK, 'r');
  const say = (cmd) => { fs.writeSync(ctl, `${cmd}\n`); fs.readSync(ack, Buffer.alloc(8)); };
  say('enable');
  const t0 = process.hrtime.bigint();
  run(timed.a);
  const wallNs = Number(process.hrtime.bigint() - t0) / calls;
  say('disable');
  process.stdout.write(JSON.stringify({ variant, calls, wallNs }) + '\n');
}

// ---- the parent ------------------------------------------------------------------------------------

const CLASSES = [
  ['kernel', 'the kernel (the ioctl, entry and exit)'],
  ['ioctl', "libc's ioctl() (the samples landing on the return to user space)"],
  ['addon', 'the addon (userfaultfd.node)'],
  ['node', 'Node-API and V8 runtime (node)'],
  ['jit', 'JavaScript (JIT code: lib/ and the loop)'],
  ['other', 'other'],
];

function classify(dso, sym) {
  if (dso === '[kernel.kallsyms]') return 'kernel';
  if (dso.startsWith('libc') && /ioctl/.test(sym)) return 'ioctl';
  if (dso === 'userfaultfd.node') return 'addon';
  if (dso === 'node') return 'node';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-')) return 'jit';
  return 'other';
}

function measure(variant, calls, dir) {
  const ctl = path.join(dir, 'ctl');
  const ack = path.join(dir, 'ack');
  const data = path.join(dir, `${variant}.data`);
  const r = spawnSync('perf', ['record', '-q', '-e', 'cpu-clock', '-F', String(FREQ), '-D', '-1', '--control', `fifo:${ctl},${ack}`,
    '-o', data, '--', 'taskset', '-c', '0', process.execPath, '--perf-basic-prof', __filename, '--child', variant, '--calls', String(calls)],
  { encoding: 'utf8', env: { ...process.env, PERF_CTL: ctl, PERF_ACK: ack }, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`perf record ${variant}: ${r.stderr}`);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  const report = spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', 'dso,sym', '--stdio', '-F', 'sample,dso,sym'],
    { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ns = Object.fromEntries(CLASSES.map(([k]) => [k, 0]));
  for (const line of report.stdout.split('\n')) {
    const m = /^\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (m) ns[classify(m[2], m[3])] += Number(m[1]) * (1e9 / FREQ) / calls;
  }
  fs.rmSync(data, { force: true });
  return { ...result, ns, cpuNs: Object.values(ns).reduce((a, b) => a + b, 0) };
}

function main() {
  if (spawnSync('perf', ['--version']).status !== 0) {
    console.error('copy-anatomy needs perf (apt-get install linux-perf)');
    process.exit(2);
  }
  const runs = Number(opts.runs);
  const calls = Number(opts.calls);
  const variants = ['c-copy', 'binding-copy', 'copy', 'c-wake', 'binding-wake', 'wake'];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-anatomy-'));
  spawnSync('mkfifo', [path.join(dir, 'ctl'), path.join(dir, 'ack')]);
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  const load = os.loadavg();
  try {
    for (let r = 0; r < runs; r++) {
      for (const v of shuffle([...variants], Math.random)) samples[v].push(measure(v, calls, dir));
      process.stdout.write('.');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write('\n');
  const med = (v, f) => median(samples[v].map(f));
  const f0 = (x) => x.toFixed(0);
  let meltdown = 'unknown';
  try { meltdown = fs.readFileSync('/sys/devices/system/cpu/vulnerabilities/meltdown', 'utf8').trim(); } catch { /* no sysfs */ }
  const lines = [];
  for (const [what, vs] of [['copy(): UFFDIO_COPY of 4 KiB (DONTWAKE) into a fresh page', ['c-copy', 'binding-copy', 'copy']],
    ['wake(): UFFDIO_WAKE of one page nobody waits on', ['c-wake', 'binding-wake', 'wake']]]) {
    lines.push(`### ${what}`, '', `| ns per call (CPU time, median of ${runs}) | C loop | the binding function alone | the public method |`,
      '|---|---|---|---|');
    for (const [k, label] of CLASSES) lines.push(`| ${label} | ${vs.map((v) => f0(med(v, (x) => x.ns[k]))).join(' | ')} |`);
    lines.push(`| **all CPU time** | ${vs.map((v) => `**${f0(med(v, (x) => x.cpuNs))}**`).join(' | ')} |`);
    lines.push(`| × the C loop (CPU time) | 1 | ${vs.slice(1).map((v) => (med(v, (x) => x.cpuNs) / med(vs[0], (x) => x.cpuNs)).toFixed(2)).join(' | ')} |`);
    lines.push(`| wall clock (ns per call; the machine's load stretches it) | ${vs.map((v) => f0(med(v, (x) => x.wallNs))).join(' | ')} |`, '');
  }
  const header = `## Where a copy() goes (bench/copy-anatomy.js)\n\n${new Date().toISOString()}; ${os.cpus()[0]?.model}, ` +
    `${os.cpus().length} CPUs, Linux ${os.release()}, Node ${process.version}; Meltdown: ${meltdown}; load average at the start ` +
    `${load.map((x) => x.toFixed(2)).join(' ')}. perf record -e cpu-clock at ${FREQ} Hz around ${calls} calls per process, ` +
    `pinned (taskset -c 0), ${runs} rounds in random order.\n\n`;
  const text = header + lines.join('\n');
  console.log(`\n${text}`);
  if (!opts['no-write']) {
    fs.writeFileSync(path.join(__dirname, 'results-copy-anatomy.md'), text);
    console.log('wrote bench/results-copy-anatomy.md');
  }
}

if (opts.child) child(opts.child, Number(opts.calls));
else main();
