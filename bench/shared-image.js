'use strict';
// One image, many clones (docs/shared-images.md): N clone processes (bench/c/image-clone.c)
// restore from one image of --size, each touching --touched of its pages (runs of 1-32 pages at
// scattered places, reading the first --bytes of each), either the same pages in every clone or
// each clone its own random pages. Ways, each variant in a fresh handler state:
//   serve    today: each clone's private memory served by serve() from the file (one copy each)
//   missing  a SharedImage, clones faulting MISSING on the private memfd mapping (the default)
//   minor    a SharedImage, clones registered MINOR too and answered with UFFDIO_CONTINUE
// The first clone runs alone, then clones 2..N one after another (each alone); "at once" rows
// start all N together on a cold image. Baselines measured in the same pass: "in memory" (the
// image's memfd already filled, mapped with no uffd: the kernel alone), the kernel's demand-zero
// faults, and memory populated before the touches. Memory: the image's resident bytes (its
// memfd) plus every clone's private bytes (Anonymous of its mapping); serve: every clone's
// private bytes. Source bytes: what the handler read from the file. Each clone's time is its own
// touch loop (CLOCK_MONOTONIC). Median of --runs runs, variants in random order, unpinned and
// pinned (taskset -c 0: the clones and the handler share one CPU). Writes
// bench/results-shared-image.md.
// Usage: node bench/shared-image.js [--size 256MiB] [--touched 0.25] [--clones 8] [--bytes 64] [--runs 5]
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { PageSource, SharedImage, listenForUffd, constants } = require('../dist');
const { encodeWorkingSet } = require('../dist/sources/working-set');
const { parseSize, prng, touchOrder, makeImage, median, shuffle, runPasses } = require('./workload');

const { values } = parseArgs({ options: {
  size: { type: 'string', default: '256MiB' },
  touched: { type: 'string', default: '0.25' },
  clones: { type: 'string', default: '8' },
  bytes: { type: 'string', default: '64' },
  runs: { type: 'string', default: '5' },
  pass: { type: 'string' }, // internal: one pass, JSON out (the pinned pass runs under taskset)
  dir: { type: 'string' },
} });
const PAGE = constants.pageSize;
const SIZE = parseSize(values.size);
const PAGES = SIZE / PAGE;
const CLONES = Number(values.clones);
const RUNS = Number(values.runs);
const MiB = 1 << 20;
const WAYS = ['serve', 'missing', 'minor'];
const PATTERNS = ['same', 'random'];

function setup(dir) {
  const bin = path.join(dir, 'image-clone');
  execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'c', 'image-clone.c')]);
  const image = path.join(dir, 'image.bin');
  makeImage(image, SIZE);
  const orders = {};
  const sets = {};
  for (const pattern of PATTERNS) {
    const union = new Uint8Array(PAGES);
    orders[pattern] = [];
    for (let i = 0; i < CLONES; i++) {
      const order = touchOrder(PAGES, Number(values.touched), 32, pattern === 'same' ? 2026 : 2026 + i);
      const f = path.join(dir, `order-${pattern}-${i}.bin`);
      fs.writeFileSync(f, Buffer.from(order.buffer));
      orders[pattern].push(f);
      for (const p of order) union[p] = 1;
    }
    // Every page some clone touches, as one working set: what "in memory" fills first.
    const runs = [];
    for (let p = 0; p < PAGES; p++) {
      if (!union[p]) continue;
      if (runs.length > 0 && runs[runs.length - 1].first + runs[runs.length - 1].count === p) runs[runs.length - 1].count++;
      else runs.push({ first: p, count: 1, write: false, age: 0 });
    }
    sets[pattern] = { file: path.join(dir, `union-${pattern}.uffdws`), pages: union.reduce((a, b) => a + b, 0) };
    fs.writeFileSync(sets[pattern].file, encodeWorkingSet({ pageSize: PAGE, sourceSize: SIZE, rangeLength: SIZE, generation: 1, runs }));
  }
  return { dir, bin, image, orders, sets };
}

/**
 * A clone process: `ready` once set up; go() starts its touches and resolves with their time;
 * memory() with its mapping's memory now; end() lets it exit.
 */
function startClone(env, args) {
  const child = spawn(env.bin, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let onLine = null;
  const lines = [];
  child.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, i));
      out = out.slice(i + 1);
      onLine?.();
    }
  });
  const exited = new Promise((resolve) => child.on('close', resolve));
  const line = (n) => new Promise((resolve, reject) => {
    const check = () => {
      if (lines.length > n) resolve(lines[n]);
    };
    onLine = check;
    check();
    exited.then((code) => (lines.length > n ? resolve(lines[n]) : reject(new Error(`image-clone ${args[0]} exited with ${code}`))));
  });
  return {
    ready: line(0),
    go() {
      child.stdin.write('g');
      return line(1).then((l) => JSON.parse(l));
    },
    memory() {
      child.stdin.write('m');
      return line(2).then((l) => JSON.parse(l));
    },
    end() {
      child.stdin.end();
      return exited;
    },
  };
}

/** One variant: N clones of `way`, touching `pattern`; the first alone, then the others one by one (or all at once). */
async function runVariant(env, way, pattern, atOnce) {
  const sock = path.join(env.dir, `s-${process.pid}-${way}.sock`);
  let image = null;
  let listener;
  const served = [];
  if (way === 'serve') {
    listener = listenForUffd(sock);
    void (async () => {
      for await (const item of listener) {
        const p = JSON.parse(item.payload.toString());
        item.uffd.serve({ start: BigInt(p.start), length: p.length }, PageSource.file(env.image));
        served.push(item.uffd);
      }
    })();
  } else {
    image = SharedImage.create(PageSource.file(env.image), { mode: way });
    listener = listenForUffd(sock, { image });
  }
  const clones = env.orders[pattern].map((order) => startClone(env, way === 'serve'
    ? ['serve', sock, String(SIZE), order, values.bytes] : ['image', sock, order, values.bytes]));
  try {
    await Promise.all(clones.map((c) => c.ready));
    while (way === 'serve' && served.length < CLONES) await new Promise((r) => setTimeout(r, 2));
    const reports = atOnce ? await Promise.all(clones.map((c) => c.go())) : [];
    if (!atOnce) for (const c of clones) reports.push(await c.go());
    // Every clone has touched and still maps its memory: what the machine holds for all of them.
    const memory = await Promise.all(clones.map((c) => c.memory()));
    const privateBytes = memory.reduce((s, m) => s + m.anon, 0);
    const stats = image?.stats();
    return {
      first: reports[0].ns / 1e6,
      firstFaults: reports[0].faults,
      firstCpu: reports[0].cpuUs / 1e3,
      rest: median(reports.slice(1).map((r) => r.ns / 1e6)),
      slowest: Math.max(...reports.map((r) => r.ns / 1e6)),
      memory: (image ? stats.residentBytes : 0) + privateBytes,
      pss: memory.reduce((s, m) => s + m.pss, 0),
      one: memory[0].rss,
      sourceBytes: image ? stats.sourceBytes : served.reduce((s, u) => s + u.stats().bytes, 0),
      imageBytes: image ? stats.residentBytes : 0,
    };
  } finally {
    await Promise.all(clones.map((c) => c.end()));
    for (const u of served) u.close();
    listener.close();
    image?.close();
  }
}

/** A baseline clone: the image already in memory ('filled'), demand-zero ('anon') or populated ('memory'). */
async function runBaseline(env, kind, pattern) {
  const order = env.orders[pattern][0];
  if (kind !== 'filled') {
    const c = startClone(env, [kind, String(SIZE), order, values.bytes]);
    await c.ready;
    const r = await c.go();
    await c.end();
    return r.ns / 1e6;
  }
  const set = env.sets[pattern];
  const image = SharedImage.create(PageSource.file(env.image), { prefetch: set.file });
  const sock = path.join(env.dir, `s-${process.pid}-filled.sock`);
  const listener = listenForUffd(sock, { image, onError: () => {} }); // the clone takes the fd and hangs up
  try {
    while (image.stats().prefetched < set.pages) await new Promise((r) => setTimeout(r, 2));
    const c = startClone(env, ['filled', sock, order, values.bytes]);
    await c.ready;
    const r = await c.go();
    await c.end();
    return r.ns / 1e6;
  } finally {
    listener.close();
    image.close();
  }
}

/** One pass: every variant RUNS times in random order; medians. */
async function pass(env) {
  const load = [os.loadavg()[0]];
  const jobs = [];
  for (const pattern of PATTERNS) {
    for (const way of WAYS) {
      jobs.push({ key: `${pattern}/${way}`, run: () => runVariant(env, way, pattern, false) });
      jobs.push({ key: `${pattern}/${way}/at-once`, run: () => runVariant(env, way, pattern, true) });
    }
    for (const kind of ['filled', 'anon', 'memory']) jobs.push({ key: `${pattern}/${kind}`, run: () => runBaseline(env, kind, pattern) });
  }
  const results = {};
  const rand = prng(11);
  for (let i = 0; i < RUNS; i++) {
    for (const job of shuffle([...jobs], rand)) (results[job.key] ??= []).push(await job.run());
  }
  const out = { load: [...load, os.loadavg()[0]] };
  for (const [key, runs] of Object.entries(results)) {
    if (typeof runs[0] === 'number') {
      out[key] = median(runs);
    } else {
      out[key] = {};
      for (const f of Object.keys(runs[0])) out[key][f] = median(runs.map((r) => r[f]));
    }
  }
  return out;
}

const x = (a, b) => `${(a / b).toFixed(2)}x`;
const mib = (b) => (b / MiB).toFixed(1);

function table(title, r) {
  const rows = [];
  for (const pattern of PATTERNS) {
    const serve = r[`${pattern}/serve`];
    const filled = r[`${pattern}/filled`];
    for (const way of WAYS) {
      for (const atOnce of [false, true]) {
        const v = r[`${pattern}/${way}${atOnce ? '/at-once' : ''}`];
        const first = atOnce ? `${v.slowest.toFixed(1)} (slowest)` : `${v.first.toFixed(1)}`;
        const vsServe = atOnce ? x(v.slowest, r[`${pattern}/serve/at-once`].slowest) : x(v.first, serve.first);
        rows.push(`| ${pattern} | ${way}${atOnce ? ', all at once' : ''} | ${first} | ${vsServe} | ${atOnce ? 'n/a' : `${v.firstFaults}, ${v.firstCpu.toFixed(1)}`} | ` +
          `${atOnce ? 'n/a' : v.rest.toFixed(1)} | ${atOnce ? 'n/a' : x(v.rest, filled)} | ${mib(v.memory)} | ${x(v.memory, serve.one)} | ` +
          `${mib(v.pss)} | ${mib(v.sourceBytes)} | ${way === 'serve' ? 'n/a' : x(v.sourceBytes, v.imageBytes)} |`);
      }
    }
    rows.push(`| ${pattern} | baselines | in memory ${filled.toFixed(1)} ms; demand-zero ${r[`${pattern}/anon`].toFixed(1)} ms; ` +
      `populated ${r[`${pattern}/memory`].toFixed(1)} ms; one serve() clone holds ${mib(serve.one)} MiB | | | | | | | | | |`);
  }
  const same = r['same/missing'];
  const serve = r['same/serve'];
  const targets = [
    ['total memory, 8 clones on the same pages', '<= 1.25x one clone', x(same.memory, serve.one), same.memory <= 1.25 * serve.one],
    ['clones 2-N finish', '<= 1.5x in memory', x(same.rest, r['same/filled']), same.rest <= 1.5 * r['same/filled']],
    ['first clone finishes', '<= 1.2x serve()', x(same.first, serve.first), same.first <= 1.2 * serve.first],
    ['source bytes read per image byte', '1 (each page once)', x(same.sourceBytes, same.imageBytes), same.sourceBytes === same.imageBytes],
  ].map(([what, target, got, met]) => `| ${what} | ${target} | ${got} | ${met ? 'met' : 'missed'} |`);
  return [`### ${title}`, '', `Load (1-minute average) ${r.load[0].toFixed(2)} at the start, ${r.load[1].toFixed(2)} at the end.`, '',
    '| pattern | way | first clone (ms) | vs serve() | its page faults, CPU (ms) | clones 2-N (ms, median) | vs in memory | memory (MiB) | vs one serve() clone | sum of PSS (MiB) | source read (MiB) | source / image |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows, '',
    'Targets (same pages, mode missing):', '', '| target | wanted | measured | |', '|---|---|---:|---|', ...targets, ''].join('\n');
}

async function main() {
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-image-'));
  const env = setup(dir);
  if (values.pass) {
    process.stdout.write(JSON.stringify(await pass(env)) + '\n');
    return;
  }
  try {
    const self = [__filename, '--dir', dir, '--size', values.size, '--touched', values.touched, '--clones', values.clones,
      '--bytes', values.bytes, '--runs', values.runs];
    const sections = runPasses(self, table, { pinned: 'the clones and the handler', cold: false });
    const md = ['## Shared images: one image, many clones', '',
      `A ${values.size} image (a file in the page cache); ${CLONES} clone processes (bench/c/image-clone.c) each read ` +
      `${(100 * Number(values.touched)).toFixed(0)}% of its pages (runs of 1-32 pages at scattered places, the first ${values.bytes} ` +
      'bytes of each): "same" the same pages in every clone, "random" each clone its own. The first clone runs alone, then ' +
      'the others one by one; "all at once" starts them together on a cold image. Memory: the image\'s memfd plus every ' +
      'clone\'s private pages (serve(): every clone\'s private pages). Baselines of the same pass: "in memory" (the ' +
      'image already filled, mapped with no uffd), demand-zero faults, populated memory. "Its page faults, CPU": the kernel page ' +
      'faults the first clone\'s touches took and its CPU time, user and system (getrusage; a userfaultfd fault counts ' +
      'once; the CPU time is what the load of other processes disturbs least). ' +
      `Median of ${RUNS} runs; variants in random order. Machine: ${os.cpus().length} CPUs, shared (load above).`,
      '', ...sections].join('\n');
    process.stdout.write(md + '\n');
    fs.writeFileSync(path.join(__dirname, 'results-shared-image.md'), md + '\n');
  } finally {
    if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
