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
//   node bench/node-work.js fault COUNT worker|serve|js|js-hop   (baseline.c fault: the same touches)
//   node bench/node-work.js heap COUNT                     V8 heap bytes per fault, Worker path
//   node bench/node-work.js ioctl2 COUNT                   copy/wake against the in-process C loop
//   node bench/node-work.js seq-direct FILE LENGTH WINDOW  serve with fixed windows, JS-thread memcpy
//   node bench/node-work.js dirty MIB PERMILLE REPS objects|offsets   dirtyPages / dirtyOffsets scans
const fs = require('fs');
const { Userfaultfd, Region, PageSource } = require('../dist');

const PAGE = require('./page-size');
const CHUNK = 4 << 20;
const SKEW = 64;

const rss = () => Math.round(process.memoryUsage.rss() / 1024);
const now = () => process.hrtime.bigint();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
/** The malloc-family calls of the whole process so far, under LD_PRELOAD=malloc-count.so; else 0. */
const mallocs = () => (process.env.MALLOC_COUNT_FILE ? Number(fs.readFileSync(process.env.MALLOC_COUNT_FILE).readBigUInt64LE(0)) : 0);

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
  if (!process.env.MALLOC_COUNT_FILE) throw new Error('run with MALLOC_COUNT_FILE and LD_PRELOAD');
  const { view } = warmSource();
  const source = Buffer.alloc(length, 0x44);
  const run = async (served) => {
    const region = Region.map(length);
    const uffd = Userfaultfd.open();
    uffd.serve(region, PageSource.buffer(source), { readahead: false });
    if (!served) await fill(region, 0, length, view); // populate: the measured pass faults nothing
    const before = mallocs();
    await fill(region, 0, length, view);
    const after = mallocs();
    const faults = uffd.stats().faults;
    uffd.close();
    region.unmap();
    return { calls: after - before, faults };
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

// ---- direct touches, one page per fault -------------------------------------------------------

const { Worker, isMainThread, workerData, parentPort } = require('worker_threads');
const v8 = require('v8');
const ctx = () => { const r = process.resourceUsage(); return r.voluntaryContextSwitches + r.involuntaryContextSwitches; };


/** Worker side of `fault`: the readSync + copy handler, or the thread whose loads fault. */
function faultWorker({ role, fd, count, stop }) {
  if (role === 'handler') {
    const uffd = Userfaultfd.fromFd(fd);
    const src = new Uint8Array(PAGE).fill(0x5a);
    // Loaded and about to read: the loads start only now (the package's require() takes tens of
    // ms of CPU, more than the 20 ms wait; timed within the loads it was charged per fault).
    parentPort.postMessage('ready');
    let faults = 0;
    // Heap growth summed over spans of 1000 faults, leaving out a span in which a scavenge ran
    // (the used size fell): bytes allocated per fault, not what survived.
    let grown = 0;
    let counted = 0;
    let mark = -1;
    while (Atomics.load(stop, 0) === 0) {
      for (const e of uffd.readSync({ timeoutMs: 20 })) {
        uffd.copy(e.address, src);
        if (++faults % 1000 === 0) {
          const used = v8.getHeapStatistics().used_heap_size;
          if (mark >= 0 && used >= mark) {
            grown += used - mark;
            counted += 1000;
          }
          mark = v8.getHeapStatistics().used_heap_size;
        }
      }
    }
    uffd.close();
    parentPort.postMessage({ faults, heapBytes: grown, heapFaults: counted });
    return;
  }
  // role 'toucher': maps a region and loads one byte of each of its pages, timed here, once
  // the main thread has registered it.
  const region = Region.map(count * PAGE);
  const memory = new Uint8Array(region.buffer);
  parentPort.once('message', () => {
    let sink = 0;
    const t0 = now();
    for (let i = 0; i < count; i++) sink += memory[i * PAGE];
    const ns = Number(now() - t0);
    parentPort.postMessage({ ns, ok: sink === 0x5a * count });
  });
  parentPort.postMessage(region.address);
}

/** CPU time of the whole process (every thread) in ns: the load of a busy machine does not stretch it. */
const cpuNs = () => { const c = process.cpuUsage(); return (c.user + c.system) * 1000; };

function touchAll(region, count) {
  const memory = new Uint8Array(region.buffer);
  let sink = 0;
  const m0 = mallocs();
  const c0 = ctx();
  const cpu0 = cpuNs();
  const t0 = now();
  for (let i = 0; i < count; i++) sink += memory[i * PAGE];
  const ns = Number(now() - t0);
  const cpu = cpuNs() - cpu0;
  return { ns, cpu, ctx: ctx() - c0, mallocs: mallocs() - m0, ok: sink === 0x5a * count };
}

/** The same loads as baseline.c fault, answered three ways. */
async function fault([countArg, mode, youngMb]) {
  const count = Number(countArg);
  const region = Region.map(count * PAGE);
  const source = Buffer.alloc(count * PAGE, 0x5a);
  const uffd = Userfaultfd.open();
  let r;
  if (mode === 'serve') {
    // The reader thread answers; the JS thread may touch the memory itself.
    uffd.serve(region, PageSource.buffer(source), { readahead: false });
    await new Promise((res) => setTimeout(res, 20));
    r = touchAll(region, count);
  } else if (mode === 'worker') {
    uffd.register(region);
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(__filename, { argv: ['worker'], workerData: { role: 'handler', fd: uffd.fd, count, stop },
      resourceLimits: youngMb ? { maxYoungGenerationSizeMb: Number(youngMb) } : undefined });
    await new Promise((res) => w.once('message', res)); // 'ready'
    await new Promise((res) => setTimeout(res, 20)); // the Worker is in readSync()
    r = touchAll(region, count);
    Atomics.store(stop, 0, 1);
    const done = await new Promise((res) => w.once('message', res));
    r.heapBytesPerFault = done.heapFaults ? done.heapBytes / done.heapFaults : undefined;
  } else if (mode === 'js' || mode === 'js-hop') {
    // The faulting thread is a Worker touching a Region of its own (a structured clone of
    // region.buffer would copy it, touching every page from here); this thread registers that
    // memory by address and answers its faults in a 'pagefault' listener. js: the JS thread
    // reads the uffd from its loop (the default); js-hop: the reader thread reads it and hands
    // each batch over (the design before, still what serve() and non-cooperative events use).
    const w = new Worker(__filename, { argv: ['worker'], workerData: { role: 'toucher', count } });
    const base = await new Promise((res) => w.once('message', res));
    uffd.register({ start: base, length: count * PAGE });
    uffd.on('pagefault', (e) => {
      const off = Number(e.address - base);
      uffd.copy(e.address, source.subarray(off, off + PAGE));
    });
    if (uffd.handle.setJsReads(mode === 'js') !== (mode === 'js')) throw new Error(`${mode}: not set`);
    const m0 = mallocs();
    const c0 = ctx();
    const cpu0 = cpuNs();
    const done = new Promise((res) => w.once('message', res));
    w.postMessage('go');
    const m = await done;
    r = { ns: m.ns, cpu: cpuNs() - cpu0, ctx: ctx() - c0, mallocs: mallocs() - m0, ok: m.ok };
    uffd.close(); // before the Worker unmaps its region
    await w.terminate();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  uffd.close();
  region.unmap();
  out({ faults: count, ns: r.ns, nsPerFault: r.ns / count, cpuNsPerFault: r.cpu / count, ctxPerFault: r.ctx / count, ok: r.ok,
    mallocsPerFault: r.mallocs / count, heapBytesPerFault: r.heapBytesPerFault });
}

/** V8 heap bytes per fault on the Worker path (readSync + copy), over COUNT faults with a young
 * generation big enough that no scavenge runs in between (so used heap only grows). */
async function heap([countArg]) {
  const count = Number(countArg);
  const pass = Math.min(count, 10000);
  const region = Region.map(pass * PAGE);
  const uffd = Userfaultfd.open();
  uffd.register(region);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const w = new Worker(__filename, { argv: ['worker'], workerData: { role: 'handler', fd: uffd.fd, count, stop },
    resourceLimits: { maxYoungGenerationSizeMb: 512 } });
  await new Promise((res) => w.once('message', res)); // 'ready'
  await new Promise((res) => setTimeout(res, 20));
  const memory = new Uint8Array(region.buffer);
  let sink = 0;
  for (let done = 0; done < count; done += pass) {
    for (let i = 0; i < pass; i++) sink += memory[i * PAGE];
    region.dontneed(0, pass * PAGE); // missing again: the next pass faults on every page
  }
  Atomics.store(stop, 0, 1);
  const m = await new Promise((res) => w.once('message', res));
  if (sink !== 0x5a * count) throw new Error('wrong bytes');
  // The copy loop alone: precomputed addresses, the public copy().
  const n = Math.min(count, 20000);
  const r2 = Region.map(n * PAGE);
  uffd.register(r2);
  const src = new Uint8Array(PAGE);
  const addrs = Array.from({ length: n }, (_, i) => r2.address + BigInt(i * PAGE));
  const opts = { dontWake: true };
  // Spans of 1000 calls, as in the Worker: a span in which a scavenge ran is left out.
  // Also the median span: the mean takes in the compiler's work while copy() warms up (a
  // TurboFan job's code and metadata land in old space within one span).
  const spans = [];
  const perCall = (from, to, call) => {
    let grown = 0;
    let counted = 0;
    spans.length = 0;
    for (let i = from; i < to; i += 1000) {
      const h0 = v8.getHeapStatistics().used_heap_size;
      for (let j = i; j < i + 1000 && j < to; j++) call(addrs[j]);
      const h1 = v8.getHeapStatistics().used_heap_size;
      if (h1 >= h0) {
        grown += h1 - h0;
        counted += Math.min(1000, to - i);
        spans.push((h1 - h0) / Math.min(1000, to - i));
      }
    }
    return counted ? grown / counted : NaN;
  };
  const medianSpan = () => [...spans].sort((a, b) => a - b)[spans.length >> 1];
  const half = n >> 1;
  const copyBytes = perCall(0, half, (a) => uffd.copy(a, src, opts));
  const copySpan = medianSpan();
  // The README's form, with no options object.
  const copyBareBytes = perCall(half, n, (a) => uffd.copy(a, src));
  const copyBareSpan = medianSpan();
  uffd.close();
  region.unmap();
  r2.unmap();
  out({ faults: m.faults, heapFaults: m.heapFaults, workerHeapBytesPerFault: m.heapBytes / m.heapFaults, copyHeapBytesPerCall: copyBytes, copyBareHeapBytesPerCall: copyBareBytes,
    copySpanBytesPerCall: copySpan, copyBareSpanBytesPerCall: copyBareSpan });
}

/** copy() and wake() against the same ioctls in a C loop inside this process (benchIoctlLoop),
 * in blocks whose order is shuffled per round. */
function ioctl2([countArg]) {
  const { binding } = require('../dist/base/native');
  const N = 2000;
  const rounds = Math.max(3, Math.round(Number(countArg) / N));
  const region = Region.map((N * (rounds + 2) * 3 + 64) * PAGE);
  const uffd = Userfaultfd.open();
  uffd.register(region);
  const srcRegion = Region.map(PAGE);
  const src = new Uint8Array(srcRegion.buffer).fill(1);
  let next = region.address + 64n * BigInt(PAGE);
  const take = () => { const s = next; next += BigInt(N * PAGE); return Array.from({ length: N }, (_, i) => s + BigInt(i * PAGE)); };
  const ranges = Array.from({ length: 64 }, (_, i) => ({ start: region.address + BigInt(i * PAGE), length: PAGE }));
  const opts = { dontWake: true };
  // 64 present pages for the EEXIST rows (the wake rows' 64 pages are left missing).
  const present = Region.map(64 * PAGE);
  uffd.register(present);
  uffd.copy(present.address, new Uint8Array(64 * PAGE));
  const existing = Array.from({ length: 64 }, (_, i) => present.address + BigInt(i * PAGE));
  const existOk = { errorOnExist: false };
  const blocks = {
    cCopy: (a) => binding.benchIoctlLoop(uffd.fd, 0, a[0], N, src),
    copy: (a) => { const t = now(); for (let i = 0; i < N; i++) uffd.copy(a[i], src, opts); return Number(now() - t); },
    cWake: () => binding.benchIoctlLoop(uffd.fd, 1, region.address, N),
    wake: () => { const t = now(); for (let i = 0; i < N; i++) uffd.wake(ranges[i & 63]); return Number(now() - t); },
    noop: () => { const t = now(); for (let i = 0; i < N; i++) uffd.noop(); return Number(now() - t); },
    cExist: () => binding.benchIoctlLoop(uffd.fd, 2, present.address, N, src),
    // The way before errorOnExist: the thrown UffdError caught, then a wake.
    existThrow: () => {
      const t = now();
      for (let i = 0; i < N; i++) {
        try {
          uffd.copy(existing[i & 63], src);
        } catch (e) {
          if (e.code !== 'EEXIST') throw e;
          uffd.wake({ start: existing[i & 63], length: PAGE });
        }
      }
      return Number(now() - t);
    },
    existOk: () => { const t = now(); for (let i = 0; i < N; i++) uffd.copy(existing[i & 63], src, existOk); return Number(now() - t); },
  };
  const res = Object.fromEntries(Object.keys(blocks).map((k) => [k, []]));
  // CPU time beside wall time: on a busy machine the wall clock of a block includes the time
  // other processes ran; the process's CPU time (getrusage: its total is exact) does not.
  const cpu = Object.fromEntries(Object.keys(blocks).map((k) => [k, []]));
  for (let r = 0; r < rounds + 2; r++) {
    for (const k of shuffle(Object.keys(blocks))) {
      const a = k === 'cCopy' || k === 'copy' ? take() : null; // fresh pages, made before timing
      const c0 = process.cpuUsage();
      const ns = blocks[k](a) / N;
      const c = process.cpuUsage(c0);
      if (r >= 2) { // two warm-up rounds
        res[k].push(ns);
        cpu[k].push((c.user + c.system) * 1000 / N);
      }
    }
  }
  // The same public wake() with the system call taken out (the binding function replaced by an
  // empty JS function): what lib/ adds in user space, without the kernel's side effects.
  const fastWake = uffd.fastWake;
  uffd.fastWake = () => undefined;
  const noSyscall = [];
  for (let r = 0; r < rounds; r++) {
    const t = now();
    for (let i = 0; i < N; i++) uffd.wake(ranges[i & 63]);
    noSyscall.push(Number(now() - t) / N);
  }
  uffd.fastWake = fastWake;
  uffd.close();
  region.unmap();
  present.unmap();
  srcRegion.unmap();
  const med = (a) => { const b = [...a].sort((x, y) => x - y); return b[b.length >> 1]; };
  out({ ...Object.fromEntries(Object.entries(res).map(([k, v]) => [k, med(v)])), wakeNoSyscall: med(noSyscall),
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, med(v)])) });
}

function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Sequential load served from FILE with fixed windows, the JS thread copying into the region
 * directly (4 MiB at a time), as baseline.c seq-uffd does with the same windows. */
function seqDirect([file, lengthArg, windowArg]) {
  const length = Number(lengthArg);
  const { view } = warmSource();
  const region = Region.map(length);
  const uffd = Userfaultfd.open();
  uffd.serve(region, PageSource.file(file), { readahead: Number(windowArg) === PAGE ? false : Number(windowArg) });
  const memory = new Uint8Array(region.buffer);
  const t0 = now();
  for (let off = 0; off < length; off += CHUNK) memory.set(view.subarray(0, Math.min(CHUNK, length - off)), off);
  const ns = Number(now() - t0);
  const faults = uffd.stats().faults;
  uffd.close();
  region.unmap();
  out({ ns, bytes: length, faults });
}

/** dirtyPages() (objects) or dirtyOffsets() (one Float64Array) of an armed WP_ASYNC range with
 * PERMILLE/1000 of its pages written, REPS times (bench/c/dirty-scan.c scan: the same walk). */
function dirty([mibArg, permilleArg, repsArg, form]) {
  const size = Number(mibArg) << 20;
  const permille = Number(permilleArg);
  const reps = Number(repsArg);
  const uffd = Userfaultfd.open({ features: ['WP_ASYNC', 'WP_UNPOPULATED'] });
  const region = Region.map(size);
  uffd.register(region, { wp: true });
  uffd.writeProtect(region, { protect: true });
  // WP_ASYNC: writes take no userfault, so this thread may write the region itself.
  const v = new Uint8Array(region.buffer);
  for (let p = 0; p < size / PAGE; p++) if (((p * 2654435761) >>> 0) % 1000 < permille) v[p * PAGE] = 1;
  const scan = form === 'offsets' ? () => uffd.dirtyOffsets(region).length / 2 : () => uffd.dirtyPages(region).length;
  scan();
  const t0 = now();
  let runs = 0;
  for (let i = 0; i < reps; i++) runs = scan();
  const ns = Number(now() - t0) / reps;
  uffd.close();
  region.unmap();
  out({ nsPerScan: ns, msPerGiB: ns / 1e6 / (size / 2 ** 30), runs });
}

if (!isMainThread) {
  faultWorker(workerData);
  return;
}

const [cmd, ...args] = process.argv.slice(2);
const fns = { seq, rand, ioctl, scale, batch, allocs, sim, fault, heap, ioctl2, 'seq-direct': seqDirect, dirty };
if (!fns[cmd]) {
  process.stderr.write(`unknown workload ${cmd}\n`);
  process.exit(2);
}
Promise.resolve(fns[cmd](args)).catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exitCode = 1;
});
