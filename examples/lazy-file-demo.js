#!/usr/bin/env node
'use strict';
// Lazy loading a file with a native page source: `npm start`.
//
// With no argument, writes a 256 MiB file of deterministic bytes to a temporary folder,
// serves a region from it with uffd.serve(), touches the region from the main thread (first
// sequentially, then at random pages), checks every touched byte against the file, and
// prints what was loaded compared with what `fs.readFile` of the whole file costs.
// It does it twice: the first run records the pages it touches (serve's `record`), the second
// prefetches them on a native thread while it runs (serve's `prefetch`), side by side.
//
//   node examples/lazy-file-demo.js [file] [--size 256MiB] [--random 4096] [--sequential 25]
//
// --size        size of the generated file (ignored when a file is given)
// --random      how many random pages to touch after the sequential pass
// --sequential  percentage of the region read sequentially, from its start
// Exits 1 when a byte differs from the file, 2 on bad arguments.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { Userfaultfd, Region, PageSource, probe } = require('..');

const MiB = 1 << 20;

function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|K|M|G)?$/i.exec(text);
  if (!m) throw new Error(`--size: expected a size such as 256MiB, got ${text}`);
  const unit = (m[2] || 'B').toUpperCase()[0];
  const bytes = Math.floor(Number(m[1]) * ({ B: 1, K: 1024, M: MiB, G: 1024 * MiB }[unit]));
  if (bytes <= 0) throw new Error('--size must be positive');
  return bytes;
}

function parseCommandLine() {
  try {
    const { values, positionals } = parseArgs({
      allowPositionals: true,
      options: {
        size: { type: 'string', default: '256MiB' },
        random: { type: 'string', default: '4096' },
        sequential: { type: 'string', default: '25' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (positionals.length > 1) throw new Error('at most one file path');
    const random = Number(values.random);
    const sequential = Number(values.sequential);
    if (!Number.isInteger(random) || random < 0) throw new Error('--random must be an integer >= 0');
    if (!(sequential >= 0 && sequential <= 100)) throw new Error('--sequential must be a percentage');
    return { help: values.help, file: positionals[0], size: parseSize(values.size), random, sequential };
  } catch (e) {
    console.error(`lazy-file-demo: ${e.message}`);
    console.error('usage: node examples/lazy-file-demo.js [file] [--size 256MiB] [--random 4096] [--sequential 25]');
    process.exit(2);
  }
}

/** Deterministic content: each 32-bit word is a hash of its offset, so every page differs. */
function generate(file, size) {
  const chunk = Buffer.alloc(4 * MiB);
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < size; off += chunk.length) {
      const n = Math.min(chunk.length, size - off);
      for (let i = 0; i < n; i += 4) {
        let x = Math.imul((off + i) ^ 0x9e3779b9, 0x85ebca6b);
        x ^= x >>> 13;
        chunk.writeInt32LE(Math.imul(x, 0xc2b2ae35) | 0, i);
      }
      fs.writeSync(fd, chunk, 0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A progress bar on stderr: cli-progress on a terminal, a few plain lines otherwise. */
function progressBar(label, total) {
  if (process.stderr.isTTY) {
    const cliProgress = require('cli-progress');
    const bar = new cliProgress.SingleBar({
      format: `${label.padEnd(11)} [{bar}] {percentage}% | {value}/{total} {unit}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { unit: '' });
    return { update: (v, unit) => bar.update(v, { unit }), stop: () => bar.stop() };
  }
  let shown = -1;
  return {
    update(v) {
      const quarter = Math.floor((4 * v) / Math.max(total, 1));
      if (quarter > shown) {
        shown = quarter;
        process.stderr.write(`${label}: [${'#'.repeat(quarter * 5).padEnd(20, '.')}] ${quarter * 25}%\n`);
      }
    },
    stop() {},
  };
}

const ms = (ns) => `${(Number(ns) / 1e6).toFixed(1)} ms`;
const us = (ns) => (Number(ns) >= 1e6 ? ms(ns) : `${(Number(ns) / 1e3).toFixed(1)} µs`);
const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

function printTable(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  console.log(line);
  for (const r of rows) console.log(`| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`);
  console.log(line);
}

/** A small deterministic PRNG (the random pass is the same in every run). */
function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

async function main() {
  const opts = parseCommandLine();
  if (opts.help) {
    console.log('usage: node examples/lazy-file-demo.js [file] [--size 256MiB] [--random 4096] [--sequential 25]');
    return 0;
  }
  const p = probe({ backend: 'native' });
  if (!p.available) {
    console.error(`lazy-file-demo: the kernel's userfaultfd is not available here (${p.reason})`);
    return 3;
  }
  const PAGE = p.pageSize;

  let tmpDir = null;
  let file = opts.file;
  const cleanup = () => {
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
    tmpDir = null;
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  try {
    if (!file) {
      tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-demo-'));
      file = path.join(tmpDir, 'data.bin');
      const t = process.hrtime.bigint();
      generate(file, opts.size);
      console.error(`generated ${mib(opts.size)} of test data in ${ms(process.hrtime.bigint() - t)}: ${file}`);
    }
    const size = fs.statSync(file).size;
    if (size === 0) throw new Error(`${file} is empty`);
    const setDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-demo-set-'));
    let first;
    let second;
    try {
      const set = path.join(setDir, 'working-set.uffdws');
      console.error('1st run: lazy, recording the pages it touches');
      first = await runOnce(opts, file, size, PAGE, { record: set }, '1st');
      console.error('2nd run: prefetching the recorded working set while it runs');
      second = await runOnce(opts, file, size, PAGE, { prefetch: set }, '2nd');
      second.setBytes = fs.statSync(set).size;
    } finally {
      fs.rmSync(setDir, { recursive: true, force: true });
    }

    // The baseline, measured last so that its buffer (and the garbage collection it triggers)
    // does not weigh on the lazy measurements: the whole file read into memory.
    const t = process.hrtime.bigint();
    const whole = fs.readFileSync(file);
    const readFileNs = process.hrtime.bigint() - t;
    if (whole.length !== size) throw new Error('fs.readFile returned a short read');
    const both = (f) => [f(first), f(second)];
    printTable([
      ['file', `${path.basename(file)} (${mib(size)})`, ''],
      ['', '1st run: record', '2nd run: prefetch'],
      ['fs.readFile, whole file', ms(readFileNs), ''],
      ['serve(): time to first byte', ...both((r) => us(r.firstByteNs))],
      ['sequential pass', ...both((r) => `${mib(r.seqBytes)} in ${ms(r.seqNs)}`)],
      ['random pass', ...both((r) => `${opts.random} pages in ${ms(r.randNs)}`)],
      ['total time', ...both((r) => ms(r.firstByteNs + r.seqNs + r.randNs))],
      ['touched', ...both((r) => mib(r.touchedPages * PAGE))],
      ['loaded (copied by the uffd)', ...both((r) => mib(r.stats.bytes + r.stats.prefetched * PAGE))],
      ['resident in the region', ...both((r) => mib(r.resident))],
      ['faults / copies / wakeups', ...both((r) => `${r.stats.faults} / ${r.stats.copies} / ${r.stats.wakeups}`)],
      ['demand faults', ...both((r) => String(r.stats.demandFaults))],
      ['prefetched pages (misses)', ...both((r) => `${r.stats.prefetched} (${r.stats.prefetchMisses})`)],
      ['working-set file', '', `${second.setBytes} bytes`],
      ['fault latency p50 / p99', ...both((r) => `${us(r.stats.latencyNs.p50)} / ${us(r.stats.latencyNs.p99)}`)],
      ['process RSS (before fs.readFile)', ...both((r) => mib(r.rss))],
      ['bytes verified against the file', ...both((r) => `${r.checkedBytes} (${r.mismatches} mismatches)`)],
    ]);
    const mismatches = first.mismatches + second.mismatches;
    if (mismatches > 0) {
      console.error(`lazy-file-demo: ${mismatches} bytes differ from the file`);
      return 1;
    }
    console.log('all touched bytes match the file');
    return 0;
  } finally {
    cleanup();
  }
}

/** One run over `file`: serve with `serveOptions`, first byte, sequential pass, random pass. */
async function runOnce(opts, file, size, PAGE, serveOptions, tag) {
  let uffd = null;
  let region = null;
  try {
    const regionLength = Math.ceil(size / PAGE) * PAGE;

    // Lazy: open, map, serve, and read the first byte.
    let t = process.hrtime.bigint();
    uffd = Userfaultfd.open();
    region = Region.map(regionLength);
    uffd.serve(region, PageSource.file(file), serveOptions);
    const view = new Uint8Array(region.buffer);
    const firstByte = view[0];
    const firstByteNs = process.hrtime.bigint() - t;

    const fd = fs.openSync(file, 'r');
    const expected = Buffer.alloc(MiB);
    const touched = new Uint8Array(regionLength / PAGE);
    let checkedBytes = 0;
    let mismatches = 0;
    const check = (offset, length) => {
      const n = fs.readSync(fd, expected, 0, length, offset);
      const got = Buffer.from(region.buffer, offset, length);
      if (n !== length || !got.equals(expected.subarray(0, length))) {
        for (let i = 0; i < length; i++) {
          if (got[i] !== expected[i]) {
            if (mismatches < 5) console.error(`mismatch at byte ${offset + i}: got ${got[i]}, file has ${expected[i]}`);
            mismatches++;
          }
        }
      }
      checkedBytes += length;
      for (let pg = Math.floor(offset / PAGE); pg * PAGE < offset + length; pg++) touched[pg] = 1;
    };
    {
      const n = fs.readSync(fd, expected, 0, 1, 0);
      if (n !== 1 || expected[0] !== firstByte) {
        console.error(`mismatch at byte 0: got ${firstByte}, file has ${expected[0]}`);
        mismatches++;
      }
    }

    // Sequential: the first `sequential` percent, a MiB at a time, every byte compared.
    const seqEnd = Math.min(size, Math.floor((size * opts.sequential) / 100 / PAGE) * PAGE);
    let bar = progressBar(`sequential (${tag})`, Math.ceil(seqEnd / MiB));
    t = process.hrtime.bigint();
    for (let off = 0, step = 0; off < seqEnd; off += MiB, step++) {
      check(off, Math.min(MiB, seqEnd - off));
      if ((step & 3) === 0 || off + MiB >= seqEnd) bar.update(step + 1, 'MiB');
    }
    const seqNs = process.hrtime.bigint() - t;
    bar.stop();

    // Random: whole pages anywhere in the file (the last one may be partial).
    const rand = lcg(0xc0ffee);
    const pages = regionLength / PAGE;
    bar = progressBar(`random (${tag})`, opts.random);
    t = process.hrtime.bigint();
    for (let i = 0; i < opts.random; i++) {
      const pg = Math.floor(rand() * pages);
      check(pg * PAGE, Math.min(PAGE, size - pg * PAGE));
      if ((i & 255) === 0 || i + 1 === opts.random) bar.update(i + 1, 'pages');
    }
    const randNs = process.hrtime.bigint() - t;
    bar.stop();
    fs.closeSync(fd);

    // The tail of the last page, past the end of the file, reads as zeros.
    for (let i = size; i < regionLength; i++) {
      if (view[i] !== 0) {
        if (mismatches < 5) console.error(`byte ${i} past the end of the file is ${view[i]}, not 0`);
        mismatches++;
      }
    }

    await new Promise((resolve) => setTimeout(resolve, 10)); // the last window's bytes are counted just after its wake
    return {
      firstByteNs, seqNs, randNs, seqBytes: seqEnd, checkedBytes, mismatches, stats: uffd.stats(),
      touchedPages: touched.reduce((a, b) => a + b, 0), resident: region.residentPages() * PAGE,
      rss: process.memoryUsage().rss,
    };
  } finally {
    if (uffd) uffd.close(); // writes the recorded working set (serve's record)
    if (region) region.unmap();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`lazy-file-demo: ${err.stack || err.message}`);
    process.exitCode = 1;
  },
);
