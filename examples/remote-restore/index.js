#!/usr/bin/env node
// test-args: --size 8
// test-timeout: 60000
// test-expect: checksum MATCH
// Lazy restore of a memory image from object storage (S3, GCS, any S3-compatible store or HTTP
// server that honours Range), with a progress bar and a summary.
//
//   node examples/remote-restore/index.js [--url URL] [--sha256 HEX] [--size MiB]
//        [--chunk KiB] [--concurrency N] [--readers N] [--latency ms] [--json]
//
// With --url (a presigned S3 URL, say; see docs/remote-sources.md for the three-line recipe),
// the object is served into a region with PageSource.http and read by --readers thread-pool
// readers; --sha256 checks the result. Without it, the example starts its own HTTP server on
// 127.0.0.1 with a generated image of --size MiB and --latency ms per request (default 2), so
// that it runs anywhere with nothing set up.
//
// The deadlock rule: the main thread runs the HTTP reads that answer the faults, so it never
// touches the region itself; region.read() touches it from libuv's thread pool.
'use strict';

const crypto = require('crypto');
const http = require('http');
const { parseArgs } = require('util');
const { Userfaultfd, Region, PageSource, constants } = require('../..');

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    sha256: { type: 'string' },
    size: { type: 'string', default: '64' },
    chunk: { type: 'string', default: '1024' },
    concurrency: { type: 'string', default: '8' },
    readers: { type: 'string', default: '4' },
    latency: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
  },
});

const PAGE = constants.pageSize; // the kernel's base page
const PIECE = 256 * 1024; // bytes per region.read: one thread-pool task

async function main() {
  let url = opts.url;
  let expected = opts.sha256;
  let server = null;
  if (!url) {
    const image = makeImage(Number(opts.size) * 1024 * 1024);
    expected = crypto.createHash('sha256').update(image).digest('hex');
    server = await serveImage(image, Number(opts.latency));
    url = `http://127.0.0.1:${server.address().port}/image.bin`;
  }

  const source = PageSource.http(url, { chunkSize: Number(opts.chunk) * 1024, concurrency: Number(opts.concurrency) });
  const { size, etag } = await source.ready(); // fails here, early, on a bad URL or credential
  const length = Math.ceil(size / PAGE) * PAGE || PAGE;
  const region = Region.map(length);
  const uffd = Userfaultfd.open();
  uffd.on('error', (e) => console.error(`source error: ${e.code}: ${e.message}`));
  uffd.serve(region, source);

  const bar = progressBar(length);
  const t0 = process.hrtime.bigint();
  const ticker = setInterval(() => bar.update(Math.min(uffd.stats().bytes, length)), 100);
  const image = Buffer.alloc(length);
  let next = 0;
  const reader = async () => {
    while (next < length) {
      const at = next;
      next += PIECE;
      (await region.read(at, Math.min(PIECE, length - at))).copy(image, at);
    }
  };
  await Promise.all(Array.from({ length: Number(opts.readers) }, reader));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(ticker);
  bar.update(length);
  bar.stop();

  const s = uffd.stats();
  const sha = crypto.createHash('sha256').update(image.subarray(0, size)).digest('hex');
  const summary = {
    url: url.replace(/\?.*$/, ''), etag, bytes: size, seconds: +seconds.toFixed(3),
    mibPerSecond: +(size / 1048576 / seconds).toFixed(1), faults: s.source.faults, reads: s.source.reads,
    deduplicated: s.source.deduplicated, retries: s.source.retries, failures: s.source.failures,
    faultLatencyMs: { p50: +(s.source.latencyNs.p50 / 1e6).toFixed(2), p99: +(s.source.latencyNs.p99 / 1e6).toFixed(2) },
    sha256: sha, checksum: expected === undefined ? 'not checked' : sha === expected ? 'MATCH' : 'MISMATCH',
  };
  uffd.close();
  region.unmap();
  if (server) server.close();
  if (opts.json) {
    console.log(JSON.stringify(summary));
  } else {
    console.log(`restored ${(size / 1048576).toFixed(1)} MiB from ${summary.url} in ${summary.seconds} s ` +
      `(${summary.mibPerSecond} MiB/s): ${summary.faults} faults, ${summary.reads} range reads, ` +
      `${summary.deduplicated} faults shared a read, ${summary.retries} retries; ` +
      `fault latency p50 ${summary.faultLatencyMs.p50} ms, p99 ${summary.faultLatencyMs.p99} ms`);
    console.log(`checksum ${summary.checksum}`);
  }
  if (summary.checksum === 'MISMATCH' || summary.failures > 0) process.exitCode = 1;
}

/**
 * cli-progress where it is installed (a devDependency of this repository: the examples are not
 * part of the published package), else a plain line per 10 %.
 */
function progressBar(total) {
  try {
    const { SingleBar, Presets } = require('cli-progress');
    const bar = new SingleBar({ format: 'restore [{bar}] {percentage}% | {value}/{total} bytes', stream: process.stderr }, Presets.shades_classic);
    bar.start(total, 0);
    return bar;
  } catch {
    let shown = 0;
    return {
      update(v) {
        const tenth = Math.floor((v / total) * 10);
        if (tenth > shown) {
          shown = tenth;
          process.stderr.write(`restore ${tenth * 10}%\n`);
        }
      },
      stop() {},
    };
  }
}

function makeImage(bytes) {
  return crypto.randomFillSync(Buffer.allocUnsafe(bytes));
}

/** A Range-capable HTTP server of `image`, `latencyMs` per request, as an object store would be. */
function serveImage(image, latencyMs) {
  const etag = `"${crypto.createHash('md5').update(image).digest('hex')}"`;
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range || '');
      const headers = { etag, 'accept-ranges': 'bytes' };
      if (req.method === 'HEAD' || !m) {
        res.writeHead(200, { ...headers, 'content-length': image.length });
        return res.end(req.method === 'HEAD' ? undefined : image);
      }
      const first = Number(m[1]);
      const last = Math.min(Number(m[2]), image.length - 1);
      res.writeHead(206, { ...headers, 'content-length': last - first + 1, 'content-range': `bytes ${first}-${last}/${image.length}` });
      res.end(image.subarray(first, last + 1));
    }, latencyMs);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
