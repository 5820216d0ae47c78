'use strict';
// Working sets: restore a 1 GiB image of which ~25% is touched, in a fixed scattered order, by
// another process (a C program that sends its userfaultfd here, as a VM does), and compare:
//   lazy      serve() alone (adaptive read-ahead)
//   prefetch  serve() with the working set recorded in an earlier run ({ prefetch })
//   precopy   the whole image copied into the region first, then the program runs
//   memory    baseline: the image already in the program's memory (nothing to restore)
// Time to first byte and time to finish count from the moment the image starts being served;
// demand faults are stats().demandFaults. Warm page cache pinned (taskset -c 0) and unpinned,
// and cold page cache (echo 3 > /proc/sys/vm/drop_caches before each run; needs root).
// Median of --runs runs, variants in random order. Writes bench/results-working-set.md.
// --bytes: how much of each touched page the program reads (64: a cache line, the restore cost
// alone; 4096: the whole page, the program's own work added to every variant alike).
// Usage: node bench/working-set.js [--size 1GiB] [--touched 0.25] [--bytes 64] [--runs 3] [--no-cold]
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { PageSource, listenForUffd } = require('../dist');
const { encodeWorkingSet } = require('../dist/sources/working-set');
const { parseSize, prng, touchOrder, makeImage, dropCaches, median, shuffle, runPasses } = require('./workload');

const { values } = parseArgs({ options: {
  size: { type: 'string', default: '1GiB' },
  touched: { type: 'string', default: '0.25' },
  bytes: { type: 'string', default: '64' },
  runs: { type: 'string', default: '3' },
  'no-cold': { type: 'boolean', default: false },
  pass: { type: 'string' }, // internal: one pass, JSON out (the pinned pass runs under taskset)
  dir: { type: 'string' },
} });
const PAGE = 4096;
const SIZE = parseSize(values.size);
const PAGES = SIZE / PAGE;
const TOUCHED = Number(values.touched);
const RUNS = Number(values.runs);

function setup(dir) {
  const bin = path.join(dir, 'ws-touch');
  execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'c', 'ws-touch.c')]);
  const image = path.join(dir, 'image.bin');
  makeImage(image, SIZE);
  const orderFile = path.join(dir, 'order.bin');
  const order = touchOrder(PAGES, TOUCHED);
  fs.writeFileSync(orderFile, Buffer.from(order.buffer));
  const full = path.join(dir, 'full.uffdws');
  fs.writeFileSync(full, encodeWorkingSet({ pageSize: PAGE, sourceSize: SIZE, rangeLength: SIZE, generation: 1,
    runs: [{ first: 0, count: PAGES, write: false, age: 0 }] }));
  return { bin, image, orderFile, full, touched: order.length, set: path.join(dir, 'recorded.uffdws') };
}

const waitTick = () => new Promise((r) => setImmediate(r));

/** One run of the workload; the image served as `variant` says. */
async function runOnce(env, listener, sock, variant) {
  if (variant === 'memory') {
    const out = execFileSync(env.bin, ['memory', env.image, String(SIZE), env.orderFile, values.bytes]).toString();
    const r = JSON.parse(out);
    return { ttfb: (r.first - r.start) / 1e6, finish: (r.end - r.start) / 1e6, demandFaults: 0 };
  }
  const child = spawn(env.bin, ['uffd', sock, String(SIZE), env.orderFile, values.bytes], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => child.on('close', resolve));
  const { value } = await listener.next();
  const uffd = value.uffd;
  try {
    const range = { start: BigInt(value.payload.toString()), length: SIZE };
    const t0 = process.hrtime.bigint();
    const source = PageSource.file(env.image);
    if (variant === 'lazy') uffd.serve(range, source);
    else if (variant === 'record') uffd.serve(range, source, { record: env.set });
    else if (variant === 'prefetch') uffd.serve(range, source, { prefetch: env.set });
    else if (variant === 'precopy') {
      uffd.serve(range, source, { prefetch: env.full });
      while (uffd.stats().prefetched < PAGES) await waitTick();
    }
    child.stdin.end('g');
    const code = await exited;
    if (code !== 0) throw new Error(`ws-touch exited with ${code}`);
    const r = JSON.parse(stdout);
    const t = Number(t0);
    const s = uffd.stats();
    return { ttfb: (r.first - t) / 1e6, finish: (r.end - t) / 1e6, demandFaults: s.demandFaults, prefetched: s.prefetched };
  } finally {
    uffd.close(); // writes the recorded set (variant 'record')
  }
}

/** One pass: warm or cold; medians per variant. */
async function pass(env, cold) {
  const sock = path.join(env.dir, `ws-${process.pid}.sock`);
  const listener = listenForUffd(sock);
  try {
    const rec = await runOnce(env, listener, sock, 'record'); // warms the cache, writes the set
    const variants = cold ? ['lazy', 'prefetch', 'precopy'] : ['lazy', 'prefetch', 'precopy', 'memory'];
    const results = Object.fromEntries(variants.map((v) => [v, []]));
    const rand = prng(7);
    for (let i = 0; i < RUNS; i++) {
      for (const v of shuffle([...variants], rand)) {
        if (cold) dropCaches();
        results[v].push(await runOnce(env, listener, sock, v));
      }
    }
    const out = { record: rec };
    for (const v of variants) {
      out[v] = {
        ttfb: median(results[v].map((r) => r.ttfb)),
        finish: median(results[v].map((r) => r.finish)),
        demandFaults: median(results[v].map((r) => r.demandFaults)),
      };
    }
    return out;
  } finally {
    listener.close();
  }
}

function table(title, r) {
  const lazy = r.lazy;
  const base = r.memory;
  const rows = ['lazy', 'prefetch', 'precopy', 'memory'].filter((v) => r[v]).map((v) => {
    const x = r[v];
    return `| ${v} | ${x.ttfb.toFixed(2)} | ${x.finish.toFixed(1)} | ${x.demandFaults} | ` +
      `${(lazy.finish / x.finish).toFixed(2)}x | ${base ? (x.finish / base.finish).toFixed(2) + 'x' : 'n/a'} |`;
  });
  return [`### ${title}`, '',
    '| variant | first byte (ms) | finish (ms) | demand faults | speed-up over lazy | finish / in-memory |',
    '|---|---:|---:|---:|---:|---:|', ...rows, '',
    `Record run (lazy, one page per fault, recording): finish ${r.record.finish.toFixed(1)} ms, ` +
    `${r.record.demandFaults} demand faults. ` +
    `Prefetch vs lazy: ${(lazy.demandFaults / Math.max(1, r.prefetch.demandFaults)).toFixed(1)}x fewer demand faults, ` +
    `${(lazy.finish / r.prefetch.finish).toFixed(2)}x less time to finish; ` +
    `prefetch / precopy finish: ${(r.prefetch.finish / r.precopy.finish).toFixed(2)}.`, ''].join('\n');
}

async function main() {
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-ws-'));
  const env = { ...setup(dir), dir };
  if (values.pass) {
    process.stdout.write(JSON.stringify(await pass(env, values.pass === 'cold')) + '\n');
    return;
  }
  try {
    const self = [__filename, '--dir', dir, '--size', values.size, '--touched', values.touched, '--runs', values.runs,
      '--bytes', values.bytes];
    const sections = runPasses(self, table, { pinned: 'the program, the reader and the prefetcher', cold: !values['no-cold'] });
    const md = ['## Working sets: record, then prefetch', '',
      `A ${values.size} image; the program (bench/c/ws-touch.c, another process that sends its userfaultfd) reads ` +
      `${env.touched} pages (${(100 * env.touched / PAGES).toFixed(1)}%) in runs of 1-32 pages at scattered places, ` +
      `in a fixed shuffled order, reading the first ${values.bytes} bytes of each page. ` +
      'Times from the moment the image starts being served. ' +
      `Median of ${RUNS} runs; variants in random order. Baseline "memory": the image already in the program's memory.`,
      '', ...sections].join('\n');
    process.stdout.write(md + '\n');
    fs.writeFileSync(path.join(__dirname, values.bytes === '64' ? 'results-working-set.md' : `results-working-set-${values.bytes}.md`), md + '\n');
  } finally {
    if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
