'use strict';
// Remote page source: a region restored lazily over HTTP (PageSource.http, Range requests to a
// local server that waits --latency ms before each answer, as an object store would) against
// the same bytes from a local file (PageSource.file, answered natively: the baseline, measured
// in the same run). The restore is a sequential read of every page by 4 thread-pool readers
// (region.read of 256 KiB pieces), then 512 random pages in a second region, one at a time, for
// the latency of a fault that read-ahead cannot hide. Sweeps concurrency x chunk size; each
// variant runs in its own process, median of --runs, variants in random order, unpinned and
// pinned to CPU 0 (taskset; the server process is never pinned).
// Usage: node bench/remote-source.js [--size 32MiB] [--runs 3] [--latency 5]
//        [--concurrency 1,4,16] [--chunks 256KiB,1MiB,4MiB]
// Prints a markdown section and writes it to bench/results-remote-source.md.
const { execFileSync, spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');

const PAGE = require('./page-size');
const PIECE = 256 * 1024;
const READERS = 4;
const RANDOM_FAULTS = 64;

const { values } = parseArgs({ options: {
  size: { type: 'string', default: '32MiB' },
  runs: { type: 'string', default: '3' },
  latency: { type: 'string', default: '5' },
  concurrency: { type: 'string', default: '1,4,16' },
  chunks: { type: 'string', default: '256KiB,1MiB,4MiB' },
  // internal: the roles of the child processes
  serve: { type: 'string' },
  variant: { type: 'string' },
  url: { type: 'string' },
  file: { type: 'string' },
} });

function parseSize(s) {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * ({ KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 }[m[2]] ?? 1);
}
const fmtSize = (n) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : `${n / 1024} KiB`);
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Child role: a Range server of `file`, `latency` ms before each answer; prints its port. */
function serve(file, latencyMs) {
  const image = fs.readFileSync(file);
  const etag = `"${crypto.createHash('md5').update(image).digest('hex')}"`;
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range || '');
      if (req.method === 'HEAD' || !m) {
        res.writeHead(200, { etag, 'content-length': image.length });
        return res.end(req.method === 'HEAD' ? undefined : image);
      }
      const first = Number(m[1]);
      const last = Math.min(Number(m[2]), image.length - 1);
      res.writeHead(206, { etag, 'content-length': last - first + 1, 'content-range': `bytes ${first}-${last}/${image.length}` });
      res.end(image.subarray(first, last + 1));
    }, latencyMs);
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
}

/** Child role: one restore; prints { seconds, p50, p99, reads, randomP50, randomP99 } as JSON. */
async function measure(variant, url, file) {
  const { Userfaultfd, Region, PageSource } = require('../dist');
  const size = fs.statSync(file).size;
  const source = (opts) => (variant === 'file' ? PageSource.file(file) : PageSource.http(url, { ...opts, size }));
  const [conc, chunk] = variant === 'file' ? [0, 0] : variant.split('x').map(Number);
  const httpOpts = { concurrency: conc, chunkSize: chunk };

  // Sequential restore.
  let uffd = Userfaultfd.open();
  let region = Region.map(size);
  uffd.serve(region, source(httpOpts));
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: READERS }, async () => {
    while (next < size) {
      const at = next;
      next += PIECE;
      await region.read(at, Math.min(PIECE, size - at));
    }
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = uffd.stats();
  uffd.close();
  region.unmap();

  // Random single faults: each waits for its own window (read-ahead off for the file).
  uffd = Userfaultfd.open();
  region = Region.map(size);
  uffd.serve(region, source(httpOpts), { readahead: variant === 'file' ? false : 'adaptive' });
  let x = 12345;
  for (let k = 0; k < RANDOM_FAULTS; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    await region.read((x % (size / PAGE)) * PAGE, 1);
  }
  const rs = uffd.stats();
  uffd.close();
  region.unmap();
  const latency = (st) => (st.source ? st.source.latencyNs : st.latencyNs);
  console.log(JSON.stringify({
    seconds, reads: s.source ? s.source.reads : 0, p50: latency(s).p50, p99: latency(s).p99,
    randomP50: latency(rs).p50, randomP99: latency(rs).p99,
  }));
}

function hasTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 300000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

async function main() {
  const SIZE = parseSize(values.size);
  const RUNS = Number(values.runs);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-remote-'));
  const file = path.join(dir, 'image.bin');
  fs.writeFileSync(file, crypto.randomBytes(SIZE));
  const server = spawn(process.execPath, [__filename, '--serve', file, '--latency', values.latency], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const url = `http://127.0.0.1:${port}/image.bin`;
  try {
    const variants = ['file'];
    for (const c of values.concurrency.split(',').map(Number)) {
      for (const k of values.chunks.split(',').map(parseSize)) variants.push(`${c}x${k}`);
    }
    const modes = hasTaskset() ? ['unpinned', 'pinned'] : ['unpinned'];
    const results = {};
    for (const mode of modes) {
      results[mode] = {};
      for (const v of variants) results[mode][v] = [];
      for (let r = 0; r < RUNS; r++) {
        for (const v of shuffle([...variants])) {
          const args = [__filename, '--variant', v, '--url', url, '--file', file];
          const res = mode === 'pinned' ? await run('taskset', ['-c', '0', process.execPath, ...args]) : await run(process.execPath, args);
          results[mode][v].push(res);
          process.stderr.write('.');
        }
      }
    }
    process.stderr.write('\n');
    const md = report(results, variants, SIZE, RUNS);
    console.log(md);
    fs.writeFileSync(path.join(__dirname, 'results-remote-source.md'), md + '\n');
  } finally {
    server.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(results, variants, size, runs) {
  const lines = [
    '## Remote page source (PageSource.http) vs a local file',
    '',
    `${fmtSize(size)} image; HTTP server on 127.0.0.1 answering after ${values.latency} ms; ` +
    `restore = ${READERS} thread-pool readers of ${fmtSize(PIECE)} pieces, sequential; random = ` +
    `${RANDOM_FAULTS} reads of one byte at random pages, one at a time (only those that fault count). Median of ${runs} runs, each in its own process, ` +
    `variants in random order. Baseline: the same bytes from a local file (PageSource.file, page cache ` +
    `warm, answered natively), in the same run. Fault latency (stats()): from the fault reaching JavaScript to its answer ` +
    `(http: source.latencyNs), on the reader thread (file: latencyNs). ${os.cpus().length} CPUs, ` +
    `shared with other work (load average ${os.loadavg()[0].toFixed(1)} at the end).`,
  ];
  for (const mode of Object.keys(results)) {
    const med = (v, k) => median(results[mode][v].map((r) => r[k]));
    const base = size / (1 << 20) / med('file', 'seconds');
    lines.push('', `### ${mode}`, '',
      '| source | concurrency | chunk | MiB/s | vs file | range reads | fault p50 ms | fault p99 ms | random p50 ms | random p99 ms |',
      '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
    let best = null;
    for (const v of variants) {
      const mibs = size / (1 << 20) / med(v, 'seconds');
      const [c, k] = v === 'file' ? ['', ''] : v.split('x').map(Number);
      const row = [v === 'file' ? 'file (baseline)' : 'http', c, k === '' ? '' : fmtSize(k), mibs.toFixed(1),
        `${(mibs / base).toFixed(3)}x`, med(v, 'reads'), (med(v, 'p50') / 1e6).toFixed(2), (med(v, 'p99') / 1e6).toFixed(2),
        (med(v, 'randomP50') / 1e6).toFixed(2), (med(v, 'randomP99') / 1e6).toFixed(2)];
      lines.push(`| ${row.join(' | ')} |`);
      if (v !== 'file' && (best === null || mibs > best.mibs)) best = { v, mibs };
    }
    // What saturates it: the smallest concurrency x chunk within 10 % of the best throughput.
    const near = variants.filter((v) => v !== 'file' && size / (1 << 20) / med(v, 'seconds') >= 0.9 * best.mibs)
      .map((v) => v.split('x').map(Number)).sort((a, b) => a[0] * a[1] - b[0] * b[1]);
    lines.push('', `Best: ${best.mibs.toFixed(1)} MiB/s (${(best.mibs / base).toFixed(3)}x the file) at concurrency ` +
      `${best.v.split('x')[0]}, chunk ${fmtSize(Number(best.v.split('x')[1]))}; within 10 % of it from concurrency ` +
      `${near[0][0]} x chunk ${fmtSize(near[0][1])} (the fewest bytes in flight).`);
  }
  return lines.join('\n');
}

if (values.serve) serve(values.serve, Number(values.latency));
else if (values.variant) measure(values.variant, values.url, values.file).catch((e) => { console.error(e); process.exit(1); });
else main().catch((e) => { console.error(e); process.exit(1); });
