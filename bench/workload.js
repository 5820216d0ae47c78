'use strict';
// What the restore benchmarks share (bench/working-set.js, bench/kvm-restore.js): the image, the
// program's touch order, and the statistics.
const { execFileSync } = require('child_process');
const fs = require('fs');

function parseSize(s) {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * ({ KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 }[m[2]] ?? 1);
}

/** A fixed PRNG (mulberry32): the same order every run. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs of 1..32 pages at scattered places of `pages` until `touched` (a fraction) of them, in a
 * shuffled order: page numbers, each once.
 */
function touchOrder(pages, touched) {
  const rand = prng(2026);
  const used = new Uint8Array(pages);
  const runs = [];
  let n = 0;
  while (n < pages * touched) {
    const len = 1 + Math.floor(rand() * 32);
    const first = Math.floor(rand() * (pages - len));
    let free = true;
    for (let p = first; p < first + len; p++) if (used[p]) free = false;
    if (!free) continue;
    used.fill(1, first, first + len);
    runs.push([first, len]);
    n += len;
  }
  const order = new Uint32Array(n);
  let i = 0;
  for (const [first, len] of runs) for (let p = first; p < first + len; p++) order[i++] = p;
  return order;
}

/** An image of `size` bytes whose every 8 bytes say where they are; kept when it is already there. */
function makeImage(file, size) {
  if (fs.existsSync(file) && fs.statSync(file).size === size) return;
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(8 << 20);
  for (let off = 0; off < size; off += chunk.length) {
    for (let i = 0; i < chunk.length; i += 8) chunk.writeUInt32LE((off + i) >>> 3, i);
    fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off));
  }
  fs.closeSync(fd);
}

/** Empties the page cache (root only). */
function dropCaches() {
  execFileSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function shuffle(a, rand) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * Runs `self` (this benchmark and its options) in a child once per pass, each printing its
 * results as one JSON line: warm page cache unpinned, warm pinned (taskset -c 0: `pinned` share
 * one CPU), and cold unless `cold` is false. Returns the markdown `table(title, results)` makes of
 * each, or a line saying why the cold pass could not run (it needs root).
 */
function runPasses(self, table, { pinned, cold = true }) {
  const run = (cmd, args) => JSON.parse(execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] }).toString());
  const sections = [table('Warm page cache, unpinned', run(process.execPath, [...self, '--pass', 'warm']))];
  sections.push(table(`Warm page cache, pinned (taskset -c 0: ${pinned} share one CPU)`,
    run('taskset', ['-c', '0', process.execPath, ...self, '--pass', 'warm'])));
  if (cold) {
    try {
      sections.push(table('Cold page cache (drop_caches before each run), unpinned', run(process.execPath, [...self, '--pass', 'cold'])));
    } catch (e) {
      sections.push(`Cold page cache: not measured (${e.message.split('\n')[0]}).\n`);
    }
  }
  return sections;
}

module.exports = { parseSize, prng, touchOrder, makeImage, dropCaches, median, shuffle, runPasses };
