'use strict';
// File page source: a private mapping of the file versus pread(2) into a bounce buffer.
// Serves a 256 MiB region from a 256 MiB file (page cache warm: the file was just written)
// and times, on the main thread, (a) a sequential touch of every page with adaptive
// read-ahead, (b) 4096 random pages with read-ahead off. Median of RUNS runs per mode.
// Usage: node bench/page-source-file.js [--size 256MiB] [--runs 5]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { Userfaultfd, Region, PageSource } = require('../dist');

const { execFileSync } = require('child_process');

const { values } = parseArgs({ options: {
  size: { type: 'string', default: '256MiB' },
  runs: { type: 'string', default: '5' },
  cold: { type: 'boolean', default: false },
} });
const SIZE = parseSize(values.size);
const RUNS = Number(values.runs);
const PAGE = require('./page-size');

function parseSize(s) {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * ({ KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 }[m[2]] ?? 1);
}

function once(file, mode, pattern) {
  if (values.cold) execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  const uffd = Userfaultfd.open();
  const region = Region.map(SIZE);
  try {
    uffd.serve(region, PageSource.file(file, { mode }), { readahead: pattern === 'random' ? 0 : 'adaptive' });
    const v = new Uint8Array(region.buffer);
    let sum = 0;
    const t0 = process.hrtime.bigint();
    if (pattern === 'sequential') {
      for (let i = 0; i < SIZE; i += PAGE) sum += v[i];
    } else {
      let x = 12345;
      for (let k = 0; k < 4096; k++) {
        x = (x * 1103515245 + 12345) >>> 0;
        sum += v[(x % (SIZE / PAGE)) * PAGE];
      }
    }
    const ns = Number(process.hrtime.bigint() - t0);
    return { ns, sum };
  } finally {
    uffd.close();
    region.unmap();
  }
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-'));
const file = path.join(dir, 'data.bin');
try {
  const chunk = Buffer.alloc(1 << 20);
  const fd = fs.openSync(file, 'w');
  for (let off = 0; off < SIZE; off += chunk.length) {
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(((off + i) * 2654435761) >>> 0, i);
    fs.writeSync(fd, chunk);
  }
  fs.fsyncSync(fd); // clean pages, so that --cold can evict them
  fs.closeSync(fd);
  console.log(`file source, ${SIZE >> 20} MiB, median of ${RUNS} runs (page cache ${values.cold ? 'cold: evicted before each run' : 'warm'})`);
  for (const pattern of ['sequential', 'random']) {
    const res = {};
    for (const mode of ['mmap', 'pread']) res[mode] = [];
    for (let r = 0; r < RUNS; r++) {
      for (const mode of ['mmap', 'pread']) res[mode].push(once(file, mode, pattern).ns); // interleaved
    }
    for (const mode of ['mmap', 'pread']) {
      const ms = median(res[mode]) / 1e6;
      const extra = pattern === 'sequential' ? `${((SIZE / (1 << 20)) / (ms / 1000)).toFixed(0)} MiB/s` : `${(ms * 1e3 / 4096).toFixed(1)} us/fault`;
      console.log(`${pattern.padEnd(10)} ${mode.padEnd(5)} ${ms.toFixed(1).padStart(8)} ms  ${extra}`);
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
