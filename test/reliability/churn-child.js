// Lifecycle churn across threads: uffds opened, registered (missing + write-protect), served
// (half natively from a buffer, half by a JS 'pagefault' listener), worked on by the thread
// pool, and torn down every way a program does it, in the main thread and several Workers at
// once, for a number of cycles or seconds. It is the reproducer and the proof of issue 32 (a
// use-after-free between teardown and a late delivery); `npm run stress` runs it for 10 minutes.
//
//   node --expose-gc test/reliability/churn-child.js [--cycles N] [--seconds S] [--workers W]
//        [--seed X] [--kill-ms MS] [--fork 0|1] [--quiet]
//
// Each cycle, in whichever thread runs it: open a uffd with EVENT_REMOVE, EVENT_UNMAP,
// PAGEFAULT_FLAG_WP, POISON and (with CAP_SYS_PTRACE) EVENT_FORK, those the kernel has; map a
// region (private anonymous, or shared memfd every other cycle), register it missing+wp, serve
// its first half from a buffer and answer the second half's missing faults, and every WP fault,
// from JavaScript. Then run, a few at a time: reads from the thread pool, each checked against
// what the page must hold; writes to write-protected pages; MADV_DONTNEEDs (REMOVE events);
// poisoned pages read through the SIGBUS guard (anonymous cycles); and now and then a child
// process spawned (a FORK event whose uffd is closed at once, at the end, or left to the GC).
// Then one teardown, chosen at random:
//   close     stop serving or not, close(), then unmap()
//   unmap     unmap() with reads in flight (deferred until they end: an UNMAP event), close()
//   pending   close() while pool threads wait on faults nobody answers: they read zeros
//   drop      no close(): the listeners go, the references go, and the GC's finalizer closes it
//   yield     a second object of the same uffd (fromFd) takes over the faults from the first,
//             whose event-only reader steps aside; both are closed
// Meanwhile the main thread terminates a Worker now and then (one chance in 3 every --kill-ms,
// 250 by default), one that is in a cycle (pending faults, reader running), and starts another. A thread that finds a wrong byte prints
// "CHURN FAILURE ..." and the process exits 1; at the end the main thread prints
// "CHURN OK {json}" with the counts. A crash is the process dying of its signal.
'use strict';
const path = require('path');
const { Worker, isMainThread, parentPort, workerData, threadId } = require('worker_threads');
const { spawn } = require('child_process');
const { Userfaultfd, Region, PageSource, probe } = require(path.resolve(__dirname, '../../dist'));
const { privileges } = require('../helpers');

const TEARDOWNS = ['close', 'unmap', 'pending', 'drop', 'yield'];
const POISONED = 'poisoned'; // expected[p] of a poisoned page
// --fork 0: no child processes (so no FORK events); Workers learn it through workerData.
let FORK = isMainThread ? !process.argv.includes('--fork') || process.argv[process.argv.indexOf('--fork') + 1] !== '0' : workerData.fork;

function parseArgs(argv) {
  const o = { cycles: 0, seconds: 0, workers: 3, seed: 1, quiet: false, 'kill-ms': 250, fork: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quiet') o.quiet = true;
    else if (a.startsWith('--') && i + 1 < argv.length) o[a.slice(2)] = Number(argv[++i]);
    else throw new Error(`churn-child: unknown argument ${a}`);
  }
  if (!(o.cycles > 0) && !(o.seconds > 0)) o.cycles = 200;
  return o;
}

/** mulberry32: a small seeded generator, one per thread. */
function generator(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n) => Math.floor(next() * n);
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(msg) {
  const line = `CHURN FAILURE (thread ${threadId}): ${msg}`;
  if (isMainThread) {
    process.stdout.write(line + '\n');
    process.exit(1);
  }
  parentPort.postMessage({ failure: line });
  throw new Error(line);
}

/** Page p of cycle c's source: a header (page, cycle) and a body only they determine. */
function sourcePage(ps, p, c, out) {
  for (let i = 0; i < ps; i++) out[i] = (p * 31 + c * 7 + i) & 0xff;
  new DataView(out.buffer, out.byteOffset, 8).setUint32(0, p, true);
  new DataView(out.buffer, out.byteOffset, 8).setUint32(4, c, true);
  return out;
}

/** The features of the cycle: what the kernel has of those the cycle uses. */
function cycleFeatures(shared) {
  const have = new Set(probe({ backend: 'native' }).features);
  const want = ['EVENT_REMOVE', 'EVENT_UNMAP', 'PAGEFAULT_FLAG_WP', 'POISON'];
  if (shared) want.push('WP_HUGETLBFS_SHMEM');
  if (privileges.ptrace) want.push('EVENT_FORK'); // needs CAP_SYS_PTRACE
  return want.filter((f) => have.has(f));
}

/** One cycle in this thread; adds to `counts`. */
async function cycle(rnd, c, counts) {
  const shared = c % 2 === 1;
  const features = cycleFeatures(shared);
  const wp = features.includes('PAGEFAULT_FLAG_WP') && (!shared || features.includes('WP_HUGETLBFS_SHMEM'));
  const poison = !shared && features.includes('POISON');
  const fork = FORK && features.includes('EVENT_FORK') && rnd(8) === 0;
  const teardown = TEARDOWNS[rnd(TEARDOWNS.length)];
  let uffd = Userfaultfd.open({ features });
  const ps = uffd.pageSize;
  const pages = 8 + 2 * rnd(12);
  const half = pages / 2;
  let region = Region.map(pages * ps, { shared });
  const source = new Uint8Array(pages * ps);
  for (let p = 0; p < pages; p++) sourcePage(ps, p, c, source.subarray(p * ps, (p + 1) * ps));
  // What each page must read as now (null: its source page); shmem keeps a page across DONTNEED.
  const expected = new Array(pages).fill(null);
  let answering = true;
  uffd.register(region, { missing: true, wp });
  // 'yield': the opened object reads events only (no consumer); a fromFd duplicate serves and
  // listens, claims the faults, and the first object's reader steps aside for it.
  const h = teardown === 'yield' ? Userfaultfd.fromFd(uffd.fd) : uffd;
  const served = h.serve({ start: region.address, length: half * ps }, PageSource.buffer(source.subarray(0, half * ps)));
  const base = region.address;
  // EAGAIN: a non-cooperative event (a fork's, a REMOVE) is not read yet; the ioctl is tried
  // again once it is.
  const answer = (e) => {
    const page = e.address - (e.address % BigInt(ps));
    try {
      if (e.wp) {
        counts.wpFaults++;
        h.writeProtect({ start: page, length: ps }, { protect: false });
        return;
      }
      counts.jsFaults++;
      if (!answering) return; // 'pending': the fault waits for close()
      const p = Number((page - base) / BigInt(ps));
      h.copy(page, source.subarray(p * ps, (p + 1) * ps));
    } catch (err) {
      if (err.code === 'EEXIST') h.wake({ start: page, length: ps });
      else if (err.code === 'EAGAIN') setTimeout(() => { if (!h.closed) answer(e); }, 1);
      else if (err.code !== 'ENOENT' && !h.closed) fail(`cycle ${c}: answering 0x${page.toString(16)}: ${err.stack}`);
    }
  };
  h.on('pagefault', answer);
  const untilRead = async (ioctl) => {
    for (;;) {
      try {
        return ioctl();
      } catch (err) {
        if (err.code !== 'EAGAIN') throw err;
        await delay(1);
      }
    }
  };
  // A fault message can outlive its fault: a read-ahead window (or another fault's answer) may
  // have filled the page and woken the thread, whose access ended, and let a deferred unmap()
  // run, before the message was read. Answering it then meets ENOENT, reported as a source
  // failure; nothing waits on it. Anything else is a failure of the run.
  h.on('error', (err) => {
    if (err.code === 'ENOENT') counts.staleFaults++;
    else fail(`cycle ${c}: ${err.stack}`);
  });
  h.on('remove', () => counts.removeEvents++);
  h.on('unmap', () => counts.unmapEvents++);
  // Any thread's fork gives every uffd of the process with EVENT_FORK and a registered range a
  // FORK event: the child's uffd, closed now, at the end of the cycle, or never (the GC does).
  const children = [];
  h.on('fork', (e) => {
    counts.forkEvents++;
    const fate = rnd(3);
    if (fate === 0) e.uffd.close();
    else if (fate === 1) children.push(e.uffd);
  });

  const check = (p, bytes, what) => {
    if (expected[p] === POISONED) fail(`cycle ${c}: ${what} of poisoned page ${p} succeeded`);
    const want = expected[p] ?? source.subarray(p * ps, (p + 1) * ps);
    if (!Buffer.from(bytes.buffer, bytes.byteOffset, ps).equals(Buffer.from(want.buffer, want.byteOffset, ps))) {
      const at = bytes.findIndex((b, i) => b !== want[i]);
      // What the page holds instead: zeros, or which page of which cycle (sourcePage's header).
      const head = new DataView(bytes.buffer, bytes.byteOffset, 8);
      const got = bytes.subarray(0, ps).every((b) => b === 0) ? 'all zeros'
        : `page ${head.getUint32(0, true)} of cycle ${head.getUint32(4, true)}`;
      fail(`cycle ${c} (${shared ? 'shmem' : 'anon'}, ${teardown}): ${what} page ${p} byte ${at} is ${bytes[at]}, ` +
        `want ${want[at]} (it holds ${got}; expected ${expected[p] ? 'a write of cycle ' + new DataView(want.buffer, want.byteOffset, 8).getUint32(4, true) : 'its source page'}; ` +
        `features ${features.join(' ')}${fork ? ', forking' : ''})`);
    }
  };
  // One operation at a time per page; a few pages at a time.
  const busy = new Set();
  const op = async () => {
    let p = rnd(pages);
    for (let k = 0; k < pages && busy.has(p); k++) p = (p + 1) % pages;
    if (busy.has(p)) return;
    busy.add(p);
    try {
      const kind = rnd(20);
      if (expected[p] === POISONED && kind < 16) {
        // A read or a write of a poisoned page rejects with SIGBUS (the pool thread's guard).
        const access = kind < 8 ? region.read(p * ps, ps) : region.write(p * ps, new Uint8Array(ps));
        await access.then(() => fail(`cycle ${c}: page ${p} is poisoned, yet its access succeeded`), (err) => {
          if (err.code !== 'SIGBUS') throw err;
        });
        counts.sigbus++;
      } else if (kind < 8) {
        check(p, await region.read(p * ps, ps), 'read');
        counts.reads++;
      } else if (kind === 8 && poison && p >= half) {
        region.dontneed(p * ps, ps); // missing again: only a missing page takes poison
        await untilRead(() => h.poison({ start: base + BigInt(p * ps), length: ps }));
        expected[p] = POISONED;
        counts.poisoned++;
      } else if (kind === 9 && fork) {
        await new Promise((resolve) => spawn('true').on('close', resolve).on('error', resolve));
        counts.spawns++;
      } else if (kind < 16 && wp) {
        // Protect the page if it is there (a missing page has nothing to protect without
        // WP_UNPOPULATED; its write is then a missing fault first), then write it from the pool.
        try {
          await untilRead(() => h.writeProtect({ start: base + BigInt(p * ps), length: ps }, { protect: true }));
        } catch (err) {
          if (err.code !== 'ENOENT') throw err;
        }
        const page = sourcePage(ps, p, c + 1000 + rnd(1000), new Uint8Array(ps));
        await region.write(p * ps, page);
        expected[p] = page;
        counts.writes++;
      } else {
        region.dontneed(p * ps, ps); // a REMOVE event, read before madvise returns
        if (!shared) expected[p] = null;
        counts.dontneeds++;
      }
    } finally {
      busy.delete(p);
    }
  };
  const ops = 16 + rnd(32);
  const lanes = [];
  for (let l = 0; l < 3; l++) {
    lanes.push((async () => {
      for (let i = l; i < ops; i += 3) await op();
    })());
  }
  await Promise.all(lanes);

  switch (teardown) {
    case 'close':
      if (rnd(2) === 0) served.stop();
      uffd.close();
      region.unmap();
      break;
    case 'unmap': {
      // Reads of pages dropped just before: faults in flight when unmap() is asked for.
      const reads = [];
      for (let p = 0; p < pages; p += 3) {
        if (!shared) {
          region.dontneed(p * ps, ps);
          expected[p] = null;
        }
        reads.push(region.read(p * ps, ps).then((b) => check(p, b, 'unmap-time read')));
      }
      region.unmap();
      await Promise.all(reads);
      await delay(1); // the UNMAP event of the deferred munmap
      uffd.close();
      break;
    }
    case 'pending': {
      answering = false;
      const pending = [];
      for (let p = half; p < pages; p++) {
        region.dontneed(p * ps, ps);
        pending.push(region.read(p * ps, ps));
      }
      await delay(rnd(3));
      uffd.close(); // wakes them: they fault again as ordinary faults
      const got = await Promise.all(pending);
      for (const b of got) {
        // An anonymous page reads as zeros; a shmem page keeps what the page cache has.
        if (!shared && b.some((x) => x !== 0)) fail(`cycle ${c}: a fault released by close() read non-zero bytes`);
      }
      counts.released += got.length;
      region.unmap();
      break;
    }
    case 'drop':
      // No close(): nothing keeps the uffd but this function; its finalizer closes it.
      h.removeAllListeners();
      if (rnd(2) === 0) region.unmap();
      uffd = null;
      region = null;
      counts.dropped++;
      break;
    case 'yield':
      h.close();
      uffd.close();
      region.unmap();
      break;
  }
  for (const child of children) child.close();
  counts.cycles++;
  counts.teardowns[teardown] = (counts.teardowns[teardown] || 0) + 1;
  if (teardown === 'drop' && typeof global.gc === 'function' && rnd(3) === 0) global.gc();
}

function newCounts() {
  return { cycles: 0, reads: 0, writes: 0, dontneeds: 0, jsFaults: 0, wpFaults: 0, removeEvents: 0,
    unmapEvents: 0, forkEvents: 0, spawns: 0, poisoned: 0, sigbus: 0, staleFaults: 0, released: 0, dropped: 0, teardowns: {} };
}

function addCounts(into, from) {
  for (const [k, v] of Object.entries(from)) {
    if (k === 'teardowns') for (const [t, n] of Object.entries(v)) into.teardowns[t] = (into.teardowns[t] || 0) + n;
    else into[k] += v;
  }
}

/** Runs cycles while the shared budget lasts: ctl[0] cycles started, ctl[1] 1 = stop. */
async function runCycles(ctl, maxCycles, seed, report) {
  const rnd = generator(seed);
  for (;;) {
    if (Atomics.load(ctl, 1) === 1) return;
    const c = Atomics.add(ctl, 0, 1);
    if (maxCycles > 0 && c >= maxCycles) return;
    const counts = newCounts();
    if (!isMainThread) parentPort.postMessage({ cycling: true });
    await cycle(rnd, c, counts);
    report(counts);
  }
}

if (!isMainThread) {
  const { ctl, maxCycles, seed } = workerData;
  runCycles(new Int32Array(ctl), maxCycles, seed, (counts) => parentPort.postMessage({ counts }))
    .then(() => parentPort.postMessage({ done: true }));
} else {
  main();
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!probe({ backend: 'native' }).available) {
    console.log('CHURN SKIPPED: the native backend is unavailable');
    return;
  }
  const t0 = Date.now();
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const total = newCounts();
  Object.assign(total, { workersStarted: 0, workersTerminated: 0 });
  const rnd = generator(o.seed * 7919);
  const workers = new Set();
  const cycling = new Set(); // Workers that have begun a cycle
  let lastProgress = Date.now();
  let seedNext = o.seed * 1000;
  let finished = false;

  const startWorker = () => {
    const w = new Worker(__filename, { workerData: { ctl: ctl.buffer, maxCycles: o.cycles, seed: ++seedNext, fork: FORK } });
    total.workersStarted++;
    workers.add(w);
    w.on('message', (m) => {
      if (m.cycling) cycling.add(w);
      if (m.counts) { addCounts(total, m.counts); lastProgress = Date.now(); }
      if (m.failure) { process.stdout.write(m.failure + '\n'); process.exit(1); }
      // A Worker whose cycles are done must exit by itself (nothing of it holds its loop);
      // one that does not within 10 s is a leak, and fails the run.
      if (m.done) setTimeout(() => { if (workers.has(w)) fail('a Worker with no cycle left did not exit'); }, 10000).unref();
    });
    w.on('error', (e) => fail(`worker: ${e.stack}`));
    w.on('exit', () => { workers.delete(w); cycling.delete(w); });
  };
  for (let i = 0; i < o.workers; i++) startWorker();

  // Now and then, terminate a Worker that is in a cycle (its uffd open, its reader running,
  // faults maybe pending), and start another in its place.
  const killer = setInterval(() => {
    if (cycling.size === 0 || Atomics.load(ctl, 1) === 1 || rnd(3) !== 0) return;
    const w = [...cycling][rnd(cycling.size)];
    workers.delete(w);
    cycling.delete(w);
    total.workersTerminated++;
    w.terminate();
    startWorker();
  }, o['kill-ms']);
  const deadline = o.seconds > 0 ? t0 + o.seconds * 1000 : Infinity;
  const ticker = setInterval(() => {
    if (Date.now() >= deadline) Atomics.store(ctl, 1, 1);
    if (Date.now() - lastProgress > 180000) {
      process.stdout.write(`CHURN HANG: no cycle finished for 180 s ${JSON.stringify(total)}\n`);
      process.exit(2);
    }
    if (!o.quiet) process.stdout.write(`churn: ${total.cycles} cycles, ${Math.round((Date.now() - t0) / 1000)} s\n`);
  }, 10000);

  const mainCounts = (counts) => { addCounts(total, counts); lastProgress = Date.now(); };
  runCycles(ctl, o.cycles, o.seed, mainCounts).then(async () => {
    Atomics.store(ctl, 1, 1);
    clearInterval(killer);
    // The Workers finish their cycle in progress.
    while (workers.size > 0) await delay(50);
    clearInterval(ticker);
    finished = true;
    total.seconds = Math.round((Date.now() - t0) / 100) / 10;
    process.stdout.write(`CHURN OK ${JSON.stringify(total)}\n`);
  }, (e) => fail(e.stack));
  process.on('exit', (code) => {
    if (code === 0 && !finished) process.stdout.write('CHURN FAILURE: exited before the cycles ended\n');
  });
}
