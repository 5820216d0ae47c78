'use strict';
// One workload of this package per process (bench/run.js runs it, alternating with the C
// baseline of bench/c/baseline.c); prints one JSON line. The faulting side mirrors the C one:
// memcpy (region.write on the thread pool) of 4 MiB chunks from a warm source that starts 64
// bytes past a page boundary (see SKEW in baseline.c).
//
//   node bench/node-work.js seq FILE LENGTH serve-adaptive|serve-page|js|zero
//   node bench/node-work.js rand LENGTH COUNT serve|js
//   node bench/node-work.js ioctl COUNT
//   node bench/node-work.js scale THREADS shared|per|zero LENGTH
//   node bench/node-work.js batch K ROUNDS wake|dontwake
//   node bench/node-work.js allocs LENGTH          (run with LD_PRELOAD=malloc-count.so)
//   node bench/node-work.js sim COUNT
const fs = require('fs');
const { Userfaultfd, Region, PageSource } = require('../dist');

const PAGE = 4096;
const CHUNK = 4 << 20;
const SKEW = 64;

const rss = () => Math.round(process.memoryUsage.rss() / 1024);
const now = () => process.hrtime.bigint();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** A warm source of CHUNK bytes at SKEW past a page boundary (a populated Region's memory). */
function warmSource() {
  const r = Region.map(CHUNK + PAGE);
  const view = new Uint8Array(r.buffer, SKEW, CHUNK);
  for (let i = 0; i < view.length; i++) view[i] = (i * 7) & 0xff;
  return { region: r, view };
}

/** Writes [offset, offset + length) of `region` in CHUNK pieces, one at a time. */
async function fill(region, offset, length, src) {
  for (let off = 0; off < length; off += CHUNK) {
    const n = Math.min(CHUNK, length - off);
    await region.write(offset + off, n === CHUNK ? src : src.subarray(0, n));
  }
}

async function seq([file, lengthArg, mode]) {
  const length = Number(lengthArg);
  const { view } = warmSource();
  const region = Region.map(length);
  let uffd = null;
  let fileBytes = null;
  let faults = 0;
  const rss0 = rss();
  if (mode === 'serve-adaptive' || mode === 'serve-page') {
    uffd = Userfaultfd.open();
    uffd.serve(region, PageSource.file(file), { readahead: mode === 'serve-page' ? false : undefined });
  } else if (mode === 'js') {
    fileBytes = fs.readFileSync(file); // the JS handler's copy of the file (C maps it)
    uffd = Userfaultfd.open();
    uffd.register(region);
    const base = region.address;
    uffd.on('pagefault', (e) => {
      faults++;
      const off = Number(e.address - base);
      uffd.copy(e.address, fileBytes.subarray(off, off + PAGE));
    });
  } else if (mode !== 'zero') {
    throw new Error(`unknown mode ${mode}`);
  }
  const rssMid = rss();
  const t0 = now();
  await fill(region, 0, length, view);
  const ns = Number(now() - t0);
  const rss1 = rss();
  if (uffd && mode !== 'js') faults = uffd.stats().faults;
  if (uffd) uffd.close();
  region.unmap();
  out({ ns, bytes: length, faults, rssBeforeKiB: rss0, rssReadyKiB: rssMid, rssAfterKiB: rss1 });
}

/** Pages 0..n-1 shuffled like baseline.c's shuffled(): the same xorshift, the same order. */
function shuffled(n) {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  let s = 0x9e3779b97f4a7c15n;
  const M = (1n << 64n) - 1n;
  for (let i = n - 1; i > 0; i--) {
    s ^= (s << 13n) & M;
    s ^= s >> 7n;
    s ^= (s << 17n) & M;
    const j = Number(s % BigInt(i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

function percentiles(arr) {
  const a = Float64Array.from(arr).sort();
  return { p50: a[Math.floor(a.length / 2)], p99: a[Math.floor(a.length * 0.99)] };
}

async function rand([lengthArg, countArg, mode]) {
  const length = Number(lengthArg);
  const pages = length / PAGE;
  const count = Math.min(Number(countArg), pages);
  const region = Region.map(length);
  const source = Buffer.alloc(length, 0x5a);
  const uffd = Userfaultfd.open();
  if (mode === 'serve') {
    uffd.serve(region, PageSource.buffer(source), { readahead: false });
  } else {
    uffd.register(region);
    const base = region.address;
    uffd.on('pagefault', (e) => {
      const off = Number(e.address - base);
      uffd.copy(e.address, source.subarray(off, off + PAGE));
    });
  }
  const order = shuffled(pages);
  const lat = new Float64Array(count);
  const t00 = now();
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await region.read(order[i] * PAGE, PAGE);
    lat[i] = Number(now() - t0);
  }
  const total = Number(now() - t00);
  // The same reads again: the pages are present now, so this is the cost of a read on the
  // thread pool without a fault (two thread hops), to set against the C faulter's bare load.
  const floor = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await region.read(order[i] * PAGE, PAGE);
    floor[i] = Number(now() - t0);
  }
  const native = uffd.stats();
  uffd.close();
  region.unmap();
  const p = percentiles(lat);
  const f = percentiles(floor);
  out({ count, p50: p.p50, p99: p.p99, meanNs: total / count, floorP50: f.p50, floorP99: f.p99,
    netP50: p.p50 - f.p50, handlerP50: mode === 'serve' ? native.latencyNs.p50 : undefined });
}

function ioctl([countArg]) {
  const count = Number(countArg);
  const warm = 20000;
  const region = Region.map((Math.ceil(count / 1000) * 2000 + 20000) * PAGE);
  const uffd = Userfaultfd.open();
  uffd.register(region);
  const src = new Uint8Array(Region.map(PAGE).buffer);
  src.fill(1);
  const base = region.address;
  const P = BigInt(PAGE);
  const opts = { dontWake: true };
  // Destination addresses computed before the timed loops, as the C loop's are free.
  let page = 0;
  const addrs = (n) => Array.from({ length: n }, () => base + BigInt(page++ * PAGE));
  for (const a of addrs(warm)) uffd.copy(a, src, opts);
  // The public API (argument checks, then the binding) and the binding alone (what lib/ calls
  // after its checks), in alternating blocks so that both see the same machine.
  const handle = uffd.handle;
  const block = 1000;
  let publicTotal = 0;
  let bindingTotal = 0;
  let t0;
  for (let done = 0; done < count; done += block) {
    let a = addrs(block);
    t0 = now();
    for (let i = 0; i < block; i++) uffd.copy(a[i], src, opts);
    publicTotal += Number(now() - t0);
    a = addrs(block);
    t0 = now();
    for (let i = 0; i < block; i++) handle.copy(a[i], src, 1);
    bindingTotal += Number(now() - t0);
  }
  const calls = Math.ceil(count / block) * block;
  const publicNs = publicTotal / calls;
  const bindingNs = bindingTotal / calls;
  // A no-op binding call, through the class and bare.
  const n2 = count * 10;
  for (let i = 0; i < warm; i++) uffd.noop();
  t0 = now();
  for (let i = 0; i < n2; i++) uffd.noop();
  const noopNs = Number(now() - t0) / n2;
  t0 = now();
  for (let i = 0; i < n2; i++) handle.noop();
  const bareNoopNs = Number(now() - t0) / n2;
  // UFFDIO_WAKE of one page nobody waits on (as baseline.c): almost no kernel work, so the
  // difference to C is the binding's own cost.
  const ranges = Array.from({ length: 64 }, (_, i) => ({ start: base + BigInt(i * PAGE), length: PAGE }));
  for (let i = 0; i < warm; i++) uffd.wake(ranges[i & 63]);
  let wakeTotal = 0;
  let bareWakeTotal = 0;
  for (let done = 0; done < count; done += block) {
    t0 = now();
    for (let i = 0; i < block; i++) uffd.wake(ranges[i & 63]);
    wakeTotal += Number(now() - t0);
    t0 = now();
    for (let i = 0; i < block; i++) handle.wake(ranges[i & 63].start, PAGE);
    bareWakeTotal += Number(now() - t0);
  }
  uffd.close();
  region.unmap();
  out({ count, publicNs, bindingNs, noopNs, bareNoopNs, wakeNs: wakeTotal / calls, bareWakeNs: bareWakeTotal / calls });
}

async function scale([threadsArg, mode, lengthArg]) {
  const threads = Number(threadsArg);
  const part = Math.floor(Number(lengthArg) / threads / PAGE) * PAGE;
  const length = part * threads;
  const { view } = warmSource();
  const region = Region.map(length);
  const source = Buffer.alloc(length, 0x33);
  const uffds = [];
  if (mode === 'shared') {
    const u = Userfaultfd.open();
    u.serve(region, PageSource.buffer(source), { readahead: false });
    uffds.push(u);
  } else if (mode === 'per') {
    for (let t = 0; t < threads; t++) {
      const u = Userfaultfd.open();
      const start = region.address + BigInt(t * part);
      u.serve({ start, length: part }, PageSource.buffer(source.subarray(t * part, (t + 1) * part)), { readahead: false });
      uffds.push(u);
    }
  } else if (mode !== 'zero') {
    throw new Error(`unknown mode ${mode}`);
  }
  const t0 = now();
  await Promise.all(Array.from({ length: threads }, (_, t) => fill(region, t * part, part, view)));
  const ns = Number(now() - t0);
  for (const u of uffds) u.close();
  region.unmap();
  const faults = length / PAGE;
  out({ threads, ns, faults, faultsPerSec: Math.round(faults / (ns / 1e9)) });
}

async function batch([kArg, roundsArg, how]) {
  const k = Number(kArg);
  const rounds = Number(roundsArg);
  const dontWake = how === 'dontwake';
  const region = Region.map(k * rounds * PAGE);
  const uffd = Userfaultfd.open();
  uffd.register(region);
  const src = Buffer.alloc(PAGE, 7);
  let pending = [];
  let onAll = null;
  uffd.on('pagefault', (e) => {
    pending.push(e.address);
    if (pending.length === k && onAll) onAll();
  });
  let total = 0;
  for (let r = 0; r < rounds; r++) {
    const base = r * k * PAGE;
    pending = [];
    const allSeen = new Promise((resolve) => { onAll = resolve; });
    const reads = Array.from({ length: k }, (_, i) => region.read(base + i * PAGE, PAGE));
    await allSeen;
    // All K faulting threads wait: answer them, and time until every read has come back.
    const t0 = now();
    const start = region.address + BigInt(base);
    for (let i = 0; i < k; i++) uffd.copy(start + BigInt(i * PAGE), src, { dontWake });
    if (dontWake) uffd.wake({ start, length: k * PAGE });
    await Promise.all(reads);
    total += Number(now() - t0);
  }
  uffd.close();
  region.unmap();
  out({ k, rounds, nsPerRound: total / rounds, nsPerFault: total / rounds / k });
}

/** malloc calls per native fault: LD_PRELOAD=malloc-count.so counts every malloc-family call of
 * the process in a shared file; the same writes over present pages are the control. */
async function allocs([lengthArg]) {
  const length = Number(lengthArg);
  const counterFile = process.env.MALLOC_COUNT_FILE;
  const counter = () => fs.readFileSync(counterFile).readBigUInt64LE(0);
  if (!counterFile) throw new Error('run with MALLOC_COUNT_FILE and LD_PRELOAD');
  const { view } = warmSource();
  const source = Buffer.alloc(length, 0x44);
  const run = async (served) => {
    const region = Region.map(length);
    const uffd = Userfaultfd.open();
    uffd.serve(region, PageSource.buffer(source), { readahead: false });
    if (!served) await fill(region, 0, length, view); // populate: the measured pass faults nothing
    const before = counter();
    await fill(region, 0, length, view);
    const after = counter();
    const faults = uffd.stats().faults;
    uffd.close();
    region.unmap();
    return { calls: Number(after - before), faults };
  };
  await run(true); // warm up the code paths once
  const control = await run(false);
  const test = await run(true);
  const controlFaults = control.faults - length / PAGE; // faults of its populate pass
  out({ faults: test.faults - 0, controlCalls: control.calls, testCalls: test.calls, controlFaults,
    perFault: (test.calls - control.calls) / test.faults });
}

async function sim([countArg]) {
  const count = Number(countArg);
  let uffd;
  let region;
  try {
    uffd = Userfaultfd.open({ backend: 'simulator' });
    region = Region.map(count * PAGE, { backend: 'simulator' });
  } catch (e) {
    out({ unavailable: String(e.message || e) });
    return;
  }
  const src = Buffer.alloc(PAGE, 9);
  uffd.register(region);
  uffd.on('pagefault', (e) => uffd.copy(e.address - (e.address % BigInt(PAGE)), src));
  const t0 = now();
  await region.read(0, count * PAGE);
  const ns = Number(now() - t0);
  const t1 = now();
  const reads = 2000;
  for (let i = 0; i < reads; i++) await region.read((i % count) * PAGE, PAGE);
  const readNs = Number(now() - t1) / reads;
  uffd.close();
  region.unmap();
  // serve() on the simulator: PageSource.buffer, one page per fault.
  const u2 = Userfaultfd.open({ backend: 'simulator' });
  const r2 = Region.map(count * PAGE, { backend: 'simulator' });
  u2.serve(r2, PageSource.buffer(Buffer.alloc(count * PAGE, 3)), { readahead: false });
  const t2 = now();
  await r2.read(0, count * PAGE);
  const serveNs = Number(now() - t2);
  u2.close();
  r2.unmap();
  out({ count, ns, faultsPerSec: Math.round(count / (ns / 1e9)), presentReadNs: readNs,
    serveNs, serveFaultsPerSec: Math.round(count / (serveNs / 1e9)) });
}

const [cmd, ...args] = process.argv.slice(2);
const fns = { seq, rand, ioctl, scale, batch, allocs, sim };
if (!fns[cmd]) {
  process.stderr.write(`unknown workload ${cmd}\n`);
  process.exit(2);
}
Promise.resolve(fns[cmd](args)).catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exitCode = 1;
});
