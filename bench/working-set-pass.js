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
// Needs --expose-gc: each variant's timed part starts after settle() (two full GCs).
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

if (typeof global.gc !== 'function') throw new Error('run with --expose-gc (bench/working-set.js does)');
/**
 * Every variant's timed part starts from the same collected heap: without this, a GC started
 * by an earlier variant's garbage (the memory variant's 512 MiB Buffer: ~40 ms to free) or by
 * this variant's setup ran inside the timing of whichever variant came next. The second gc()
 * finishes the first one's concurrent ArrayBuffer sweeping, where big backing stores are freed.
 */
function settle() {
  global.gc();
  global.gc();
}
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
    const words = new Uint32Array(mem.buffer, mem.byteOffset, SIZE / 4);
    settle();
    const t0 = process.hrtime.bigint();
    const r = touch(words);
    return { ttfb: ms(r.first - t0), finish: ms(r.end - t0), demandFaults: 0, prefetched: 0, sum: r.sum };
  }
  const uffd = Userfaultfd.open();
  const region = Region.map(SIZE);
  try {
    // The program's view of its memory exists before the restore starts, as the other
    // process's mapping does: region.buffer is a SIZE-byte external ArrayBuffer, which makes V8
    // start a GC (external memory pressure, 1-5 ms) that settle() finishes before the timing.
    const words = new Uint32Array(region.buffer);
    settle();
    const t0 = process.hrtime.bigint();
    uffd.serve(region, PageSource.file(env.image), SERVE[variant](set));
    const r = touch(words);
    const s = uffd.stats();
    return { ttfb: ms(r.first - t0), finish: ms(r.end - t0), demandFaults: s.demandFaults, prefetched: s.prefetched, sum: r.sum };
  } finally {
    uffd.close(); // writes the recorded set (variant 'record')
    region.unmap();
  }
}

const WORDS_READ = Number(values.bytes) / 4;
const now = process.hrtime.bigint; // reads no property of `this`
const PAGE_WORDS = PAGE / 4;

/** Adds the first --bytes of `page` to `sum`. */
function readPage(words, page, sum) {
  const base = page * PAGE_WORDS;
  for (let k = 0; k < WORDS_READ; k++) sum = (sum + words[base + k]) >>> 0;
  return sum;
}

/**
 * Reads the first --bytes of each page of the order, as ws-touch does. The first page is read
 * before touchRest() is entered: V8 deoptimizes touchRest() in each run and compiles it again
 * when it is next called, on a worker thread that (pinned) took the CPU for ~2 ms before the
 * first page was read; readPage() stays compiled.
 */
function touch(words) {
  const sum = readPage(words, order[0], 0);
  const first = now();
  return { first, ...touchRest(words, sum) };
}

function touchRest(words, sum) {
  for (let i = 1; i < order.length; i++) sum = readPage(words, order[i], sum);
  return { end: now(), sum };
}

/** The program in another process: ws-touch sends its uffd, the image is served, then it runs. */
async function processRun(variant, set, listener, sock) {
  if (variant === 'memory') {
    settle();
    const r = JSON.parse(execFileSync(env.bin, ['memory', env.image, String(SIZE), env.order, values.bytes]).toString());
    return { ttfb: (r.first - r.start) / 1e6, finish: (r.end - r.start) / 1e6, demandFaults: 0, prefetched: 0, sum: r.sum };
  }
  // Before the child starts: right before serve(), the collection slowed serve() and the first
  // fault by 0.2-1 ms (pinned); the JS thread's program has no such gap (see jsRun).
  settle();
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
