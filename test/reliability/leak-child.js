// Leak check, run by leaks.test.js with --expose-gc: `node --expose-gc leak-child.js <kind> <cycles>`.
// Prints one JSON line: the process's open fds, threads and mappings before and after.
'use strict';
const fs = require('fs');
const { Worker } = require('worker_threads');
const { Userfaultfd, Region, constants } = require('../../dist');

const PAGE = constants.pageSize;
if (typeof global.gc !== 'function') {
  // Run without --expose-gc (runChild passes no node flags): expose it now.
  require('v8').setFlagsFromString('--expose-gc');
  global.gc = require('vm').runInNewContext('gc');
}
const kind = process.argv[2];
const cycles = Number(process.argv[3] || 1000);

// The mapping that starts where the program break ([heap]) ends, or within 1 MiB of it, if
// any. V8 prefers to put its code range near node's text, in the same low 4 GiB as the break, so
// in a few runs in a hundred it lands there. brk(2) then fails, and glibc's main arena grows by
// mmap(2) instead (sysmalloc's fallback): anonymous pieces of 128 KiB (its top pad) and a little
// more, in the mmap area, that a run with a free break keeps in [heap]. leaks.test.js counts
// those apart.
function breakBlockedBy(maps) {
  const range = (l) => l.slice(0, l.indexOf(' ')).split('-').map((h) => parseInt(h, 16));
  const heap = maps.find((l) => l.endsWith('[heap]'));
  if (heap === undefined) return null;
  const end = range(heap)[1];
  const next = maps.find((l) => range(l)[0] >= end);
  return next !== undefined && range(next)[0] - end < 1 << 20 ? next : null;
}

function snapshot() {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').trim().split('\n');
  if (process.env.LEAK_DUMP) fs.writeFileSync(process.env.LEAK_DUMP + (snapshot.n = (snapshot.n || 0) + 1), maps.join('\n'));
  // V8 grows its heap in 256 KiB pages at random low addresses; mmap(2) without a hint (the
  // Regions, thread stacks, malloc arenas, libraries) places mappings top-down from 0x7f...
  const mmapArea = maps.filter((l) => parseInt(l.slice(0, l.indexOf('-')), 16) >= 0x700000000000);
  return {
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: fs.readdirSync('/proc/self/task').length,
    maps: maps.length,
    mmapArea: mmapArea.length,
    // The lines themselves, for a failed check to show what was added or went away.
    mmapLines: mmapArea,
    breakBlockedBy: breakBlockedBy(maps),
    memfds: maps.filter((l) => l.includes('memfd:userfaultfd-region')).length,
  };
}

async function settle() {
  // Finalizers of ObjectWraps and external buffers run after GC, from the event loop.
  for (let i = 0; i < 6; i++) {
    global.gc();
    await new Promise(setImmediate);
  }
}

async function faultCycle() {
  const uffd = Userfaultfd.open();
  const region = Region.map(4 * PAGE);
  try {
    uffd.register(region);
    uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(PAGE, 1)));
    const b = await region.read(PAGE, 8);
    if (b[0] !== 1) throw new Error('wrong byte');
  } finally {
    uffd.close();
    region.unmap();
  }
}

function regionCycle(i) {
  const r = Region.map((1 + (i % 8)) * PAGE, { shared: i % 2 === 0 });
  new Uint8Array(r.buffer)[0] = 1;
  if (i % 3 === 0) {
    const a = r.shared ? r.alias() : null;
    if (a) a.unmap();
  }
  if (i % 2 === 1) r.unmap(); // the others are dropped, for GC to unmap
}

function workerCycle(uffd) {
  return new Promise((resolve, reject) => {
    const w = new Worker(`
      const { parentPort, workerData } = require('worker_threads');
      const { Userfaultfd } = require(workerData.dist);
      const u = Userfaultfd.fromFd(workerData.fd);
      u.on('pagefault', () => {});   // its own reader thread
      parentPort.postMessage('ready');
    `, { eval: true, workerData: { fd: uffd.fd, dist: require('path').resolve(__dirname, '../../dist') } });
    w.once('error', reject);
    w.once('message', () => w.terminate().then(() => resolve()));
  });
}

async function main() {
  const uffd = kind === 'workers' ? Userfaultfd.open() : null;
  const warm = kind === 'workers' ? 20 : 50;
  // Warm up: libuv starts its pool threads lazily, V8 grows its heap, the addon loads.
  for (let i = 0; i < warm; i++) {
    if (kind === 'faults') await faultCycle();
    else if (kind === 'regions') regionCycle(i);
    else await workerCycle(uffd);
  }
  await settle();
  const before = snapshot();
  for (let i = 0; i < cycles; i++) {
    if (kind === 'faults') await faultCycle();
    else if (kind === 'regions') { regionCycle(i); if (i % 100 === 99) await settle(); }
    else await workerCycle(uffd);
  }
  await settle();
  const after = snapshot();
  if (uffd) uffd.close();
  process.stdout.write(JSON.stringify({ kind, cycles, before, after }) + '\n');
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
