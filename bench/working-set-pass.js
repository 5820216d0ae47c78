'use strict';
// One pass of bench/working-set.js (run by it in a child, under `taskset -c 0` when pinned):
// every variant of one workload with a warm or a cold page cache, --runs times each, in random
// order; prints the medians as one JSON line.
//
//   node bench/working-set-pass.js --dir DIR --workload runs|scattered|record --cache warm|cold --runs N
//
// The program touching the image: bench/c/ws-touch.c in another process (it sends its
// userfaultfd here, as a VM does), or, for the scattered workload, also this process's own JS
// thread right after serve() returns. Cold: the image, the set and its page file leave the page
// cache before each run (ws-touch drop: posix_fadvise DONTNEED on those files only).
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const { Userfaultfd, Region, PageSource, listenForUffd } = require('../dist');
const { median, prng, shuffle } = require('./workload');

const { values } = parseArgs({ options: {
  dir: { type: 'string' },
  workload: { type: 'string' },
  cache: { type: 'string', default: 'warm' },
  runs: { type: 'string', default: '3' },
  bytes: { type: 'string', default: '64' },
} });
const env = JSON.parse(fs.readFileSync(path.join(values.dir, `${values.workload === 'runs' ? 'runs' : 'scattered'}.json`), 'utf8'));
const PAGE = env.pageSize;
const SIZE = env.size;
const COLD = values.cache === 'cold';
const order = new Uint32Array(fs.readFileSync(env.order).buffer.slice(0));

/** How each variant serves the image; `precopy` prefetches a set of every page, then lets the program run. */
const SERVE = {
  record: (set) => ({ record: set, workingSet: { pages: true } }),
  lazy: () => ({}),
  prefetch: (set) => ({ prefetch: set }),
  'prefetch+pages': (set) => ({ prefetch: set, workingSet: { pages: true } }),
  eager: (set) => ({ prefetch: set, prefetchMode: 'eager' }),
  'eager+pages': (set) => ({ prefetch: set, prefetchMode: 'eager', workingSet: { pages: true } }),
  precopy: () => ({ prefetch: env.full }),
};

const waitTick = () => new Promise((r) => setImmediate(r));
const ms = (ns) => Number(ns) / 1e6;

function dropCaches(set) {
  execFileSync(env.bin, ['drop', env.image, set, `${set}.pages`]);
}

/** The program on this process's JS thread: touches the order right after serve() returns. */
function jsRun(variant, set) {
  if (variant === 'memory') {
    const mem = Buffer.allocUnsafe(SIZE);
    const fd = fs.openSync(env.image, 'r');
    for (let off = 0; off < SIZE;) off += fs.readSync(fd, mem, off, Math.min(8 << 20, SIZE - off), off);
    fs.closeSync(fd);
    const t0 = process.hrtime.bigint();
    const r = touch(new Uint32Array(mem.buffer, mem.byteOffset, SIZE / 4));
    return { ttfb: ms(r.first - t0), finish: ms(r.end - t0), demandFaults: 0, prefetched: 0, sum: r.sum };
  }
  const uffd = Userfaultfd.open();
  const region = Region.map(SIZE);
  try {
    const t0 = process.hrtime.bigint();
    uffd.serve(region, PageSource.file(env.image), SERVE[variant](set));
    const r = touch(new Uint32Array(region.buffer));
    const s = uffd.stats();
    return { ttfb: ms(r.first - t0), finish: ms(r.end - t0), demandFaults: s.demandFaults, prefetched: s.prefetched, sum: r.sum };
  } finally {
    uffd.close(); // writes the recorded set (variant 'record')
    region.unmap();
  }
}

/** Reads the first --bytes of each page of the order, as ws-touch does. */
function touch(words) {
  const n = Number(values.bytes) / 4;
  const perPage = PAGE / 4;
  let sum = 0;
  let first = 0n;
  for (let i = 0; i < order.length; i++) {
    const base = order[i] * perPage;
    for (let k = 0; k < n; k++) sum = (sum + words[base + k]) >>> 0;
    if (i === 0) first = process.hrtime.bigint();
  }
  return { first, end: process.hrtime.bigint(), sum };
}

/** The program in another process: ws-touch sends its uffd, the image is served, then it runs. */
async function processRun(variant, set, listener, sock) {
  if (variant === 'memory') {
    const r = JSON.parse(execFileSync(env.bin, ['memory', env.image, String(SIZE), env.order, values.bytes]).toString());
    return { ttfb: (r.first - r.start) / 1e6, finish: (r.end - r.start) / 1e6, demandFaults: 0, prefetched: 0, sum: r.sum };
  }
  const child = spawn(env.bin, ['uffd', sock, String(SIZE), env.order, values.bytes], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => child.on('close', resolve));
  const { value } = await listener.next();
  const uffd = value.uffd;
  try {
    const range = { start: BigInt(value.payload.toString()), length: SIZE };
    const t0 = process.hrtime.bigint();
    uffd.serve(range, PageSource.file(env.image), SERVE[variant](set));
    if (variant === 'precopy') while (uffd.stats().prefetched < SIZE / PAGE) await waitTick();
    child.stdin.end('g');
    const code = await exited;
    if (code !== 0) throw new Error(`ws-touch exited with ${code}`);
    const r = JSON.parse(stdout);
    const s = uffd.stats();
    const t = Number(t0);
    return { ttfb: (r.first - t) / 1e6, finish: (r.end - t) / 1e6, demandFaults: s.demandFaults, prefetched: s.prefetched, sum: r.sum };
  } finally {
    uffd.close();
  }
}

async function main() {
  const sock = path.join(values.dir, `ws-${process.pid}.sock`);
  const listener = listenForUffd(sock);
  const programs = values.workload === 'runs' ? ['process'] : ['js', 'process'];
  const setOf = (program) => path.join(values.dir, `${values.workload === 'runs' ? 'runs' : 'scattered'}-${program}.uffdws`);
  const run = (program, variant) => (program === 'js' ? jsRun(variant, setOf(program))
    : processRun(variant, setOf(program), listener, sock));
  try {
    if (values.workload === 'record' || values.workload === 'runs') {
      // The set a later run prefetches: recorded by an earlier run of the same program (and
      // the first run warms the cache).
      const rec = {};
      for (const program of programs) rec[program] = await run(program, 'record');
      if (values.workload === 'record') return out({ record: rec });
    }
    const variants = values.workload === 'runs'
      ? ['lazy', 'prefetch', 'eager', 'precopy', ...(COLD ? [] : ['memory'])]
      : ['lazy', 'prefetch', 'prefetch+pages', 'eager', 'eager+pages', 'memory'];
    const combos = programs.flatMap((p) => variants.map((v) => [p, v]));
    const results = {};
    const rand = prng(7);
    for (let i = 0; i < Number(values.runs); i++) {
      for (const [p, v] of shuffle([...combos], rand)) {
        if (COLD && v !== 'memory') dropCaches(setOf(p));
        (results[`${p} ${v}`] ??= []).push(await run(p, v));
      }
    }
    const medians = {};
    for (const [key, rs] of Object.entries(results)) {
      const sums = new Set(rs.map((r) => r.sum));
      medians[key] = Object.fromEntries(['ttfb', 'finish', 'demandFaults', 'prefetched'].map((f) => [f, median(rs.map((r) => r[f]))]));
      medians[key].sum = sums.size === 1 ? [...sums][0] : 'differs';
    }
    out(medians);
  } finally {
    listener.close();
  }
}

function out(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
