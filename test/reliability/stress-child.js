// A stress run in the manner of the kernel's uffd-stress (tools/testing/selftests/mm/uffd-stress.c),
// run by stress.test.js: `node stress-child.js <js|worker|native>`.
//
// A region (STRESS_MIB, 20 MiB by default) is registered for missing faults. Each bounce drops
// every page (MADV_DONTNEED), so every page faults again and is filled from the source (the
// previous bounce's contents); faulting threads then increment each page's counter exactly once
// and race reads of the same pages. After each bounce every page is checked: its index, its
// counter (== bounce + 1: no lost and no doubled update) and its body; then it becomes the
// source of the next bounce. Bounces alternate sequential and random page order.
//
// Who answers and who faults:
//   js      a JS handler on the main thread; faulting threads are the libuv pool
//           (region.read/write from many concurrent promises)
//   worker  the JS handler runs in a Worker (Userfaultfd.fromFd); the main thread touches the
//           memory synchronously through region.buffer, racing the pool
//   native  serve(PageSource.buffer(source)): answered on the reader thread; the main thread and
//           the pool fault
// Prints one JSON line of figures; exits 1 with the first wrong page on failure.
'use strict';
const path = require('path');
const { Worker } = require('worker_threads');
const { Userfaultfd, Region, PageSource, constants } = require('../../dist');

const mode = process.argv[2] || 'js';
const PAGE = constants.pageSize;
const MIB = Number(process.env.STRESS_MIB || 20);
const BOUNCES = Number(process.env.STRESS_BOUNCES || 16);
const TASKS = Number(process.env.STRESS_TASKS || 6);   // concurrent pool loops
const PAGES = (MIB * 1024 * 1024) / PAGE;
const SEED = Number(process.env.STRESS_SEED || 12345);

let state = SEED >>> 0;
function rnd() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = Math.imul(state ^ (state >>> 15), state | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function order(n, random) {
  const a = Array.from({ length: n }, (_, i) => i);
  if (random) for (let i = n - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

function fail(msg) {
  process.stdout.write(`STRESS FAILURE (${mode}): ${msg}\n`);
  process.exitCode = 1;
  throw new Error(msg);
}

// The source: shared, so that a Worker handler can copy from it too. Page p holds
// u32 index, u32 counter, then body bytes (p * 7 + i) & 0xff that nobody changes.
const source = new SharedArrayBuffer(PAGES * PAGE);
const src8 = new Uint8Array(source);
const src32 = new Uint32Array(source);
for (let p = 0; p < PAGES; p++) {
  src32[(p * PAGE) / 4] = p;
  src32[(p * PAGE) / 4 + 1] = 0;
  for (let i = 8; i < PAGE; i++) src8[p * PAGE + i] = (p * 7 + i) & 0xff;
}

const region = Region.map(PAGES * PAGE);
const base = region.address;
const uffd = Userfaultfd.open();
const figures = { mode, mib: MIB, bounces: BOUNCES, pages: PAGES, faults: 0, copies: 0, eexist: 0, raceReads: 0 };
let worker = null;

async function setup() {
  uffd.register(region);
  if (mode === 'js') {
    uffd.on('pagefault', (e) => {
      figures.faults++;
      const p = Number((e.address - base) / BigInt(PAGE));
      try {
        figures.copies++;
        uffd.copy(e.address - (e.address % BigInt(PAGE)), src8.subarray(p * PAGE, (p + 1) * PAGE));
      } catch (err) {
        if (err.code !== 'EEXIST') throw err;
        figures.eexist++; // a racing fault on a page already filled: wake its thread
        uffd.wake({ start: e.address - (e.address % BigInt(PAGE)), length: PAGE });
      }
    });
  } else if (mode === 'worker') {
    worker = new Worker(path.join(__dirname, 'stress-worker.js'), {
      workerData: { fd: uffd.fd, base, source, dist: path.resolve(__dirname, '../../dist') },
    });
    worker.on('error', (e) => fail(`worker: ${e.stack}`));
    await new Promise((resolve) => worker.once('message', resolve));
  }
}

async function bounce(b) {
  const random = b % 2 === 1;
  region.dontneed(0, region.length); // every page is missing again
  let served = null;
  if (mode === 'native') served = uffd.serve(region, PageSource.buffer(new Uint8Array(source)), { readahead: false });

  // Page p belongs to owner p % owners: only its owner increments it (once); everybody reads.
  const mainOwns = mode !== 'js';
  const owners = TASKS + (mainOwns ? 1 : 0);
  const pages = order(PAGES, random);
  const one = new Uint8Array(4);
  const tasks = [];
  for (let t = 0; t < TASKS; t++) {
    tasks.push((async () => {
      for (let k = 0; k < pages.length; k++) {
        const p = pages[k];
        if (p % owners !== t) continue;
        const other = pages[(k + 1 + t) % pages.length]; // racing fault on somebody else's page
        const [head] = await Promise.all([region.read(p * PAGE, 8), region.read(other * PAGE + 8, 8)]);
        figures.raceReads++;
        const counter = head.readUInt32LE(4);
        new DataView(one.buffer).setUint32(0, counter + 1, true);
        await region.write(p * PAGE + 4, one);
      }
    })());
  }
  if (mainOwns) {
    // The main thread's share, touched synchronously: each fault is answered by the Worker's
    // handler or the native source while this thread waits in the kernel.
    const v32 = new Uint32Array(region.buffer);
    for (const p of pages) if (p % owners === TASKS) v32[(p * PAGE) / 4 + 1]++;
  }
  await Promise.all(tasks);

  // Check every page, then make it the next bounce's source.
  const now = new Uint8Array(region.buffer);
  const now32 = new Uint32Array(region.buffer);
  for (let p = 0; p < PAGES; p++) {
    const o = p * PAGE;
    if (now32[o / 4] !== p) fail(`bounce ${b}: page ${p} holds index ${now32[o / 4]}`);
    if (now32[o / 4 + 1] !== b + 1) fail(`bounce ${b}: page ${p} counter ${now32[o / 4 + 1]}, expected ${b + 1} (lost or doubled update)`);
    for (const i of [8, 9, 1000, 2048, PAGE - 1]) {
      if (now[o + i] !== ((p * 7 + i) & 0xff)) fail(`bounce ${b}: page ${p} byte ${i} is ${now[o + i]}`);
    }
  }
  src8.set(now);
  if (served) served.stop();
}

async function main() {
  const t0 = process.hrtime.bigint();
  await setup();
  for (let b = 0; b < BOUNCES; b++) await bounce(b);
  if (worker) {
    worker.postMessage('stats');
    const s = await new Promise((resolve) => worker.once('message', resolve));
    Object.assign(figures, { faults: s.faults, copies: s.copies, eexist: s.eexist });
    await worker.terminate();
  } else if (mode === 'native') {
    const s = uffd.stats();
    Object.assign(figures, { faults: s.faults, copies: s.copies });
  }
  uffd.close();
  region.unmap();
  figures.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`STRESS OK ${JSON.stringify(figures)}\n`);
}

main().catch((e) => {
  if (!process.exitCode) process.stdout.write(`STRESS FAILURE (${mode}): ${e.stack}\n`);
  process.exitCode = 1;
  uffd.close();
});
