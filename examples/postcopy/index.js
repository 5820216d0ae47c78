#!/usr/bin/env node
// test-requires: native linux
// test-args: --size 16
// test-timeout: 120000
// test-expect: checksum MATCH
// Post-copy migration over TCP (loopback), with the userfaultfd package.
//
//   node examples/postcopy/index.js [--size MiB] [--json]
//
// spawns both sides and prints what happened. The two roles, runnable on their own:
//
//   node examples/postcopy/index.js source [--size MiB] [--port N] [--wait S]
//       makes a memory image (default 64 MiB), listens on 127.0.0.1, prints
//       "listening <port> <sha256 of the image>", and serves its pages to one destination.
//       It waits up to --wait seconds (default 60) for the destination to connect, then
//       exits once the destination is done (its closing full copy sent), or when nothing has
//       connected for --wait seconds.
//   node examples/postcopy/index.js destination --port N [--host H]
//       maps the region, registers it, and starts the workload on it AT ONCE in a Worker:
//       every page the workload touches first faults, and this (main) thread fetches it from
//       the source (requests batched per event-loop turn, with read-ahead) and places it with
//       UFFDIO_COPY. Meanwhile the source pushes the pages nobody asked for in the background;
//       a page that is already there (EEXIST) counts as done. When every page is in, the
//       Worker checksums the region; then a full pre-copy of the same image is timed for
//       comparison. Prints one JSON line.
//
// The deadlock rule: the thread whose JavaScript answers the faults (main) never touches the
// region; only the Worker does. The Worker maps the region and the main thread registers it
// by address: one process, one address space, two threads.
//
// Wire format: three kinds of connection, named by their first byte.
//   'P' demand: destination -> source requests of 12 bytes (u64 first page, u32 page count,
//       little-endian), many per write; source -> destination a hello (u32 0, u32 0, u64 image
//       size, 32-byte sha256), then frames: u32 kind (1 demand, 2 background), u32 page
//       count, u64 first page, the pages' bytes.
//   'B' background: opened once the region is registered; the source pushes, in frames, every
//       page the demand channel has not sent, then ends it. A connection of its own, so that a
//       demand frame never waits behind megabytes of pushed pages.
//   'F' full pre-copy, for comparison: the hello, then the raw image.
'use strict';

const { spawn } = require('child_process');
const crypto = require('crypto');
const net = require('net');
const { parseArgs } = require('util');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { Placement } = require('./placement');

const PAGE = require('userfaultfd').constants.pageSize; // the kernel's base page: both ends run on this machine
const READAHEAD_PAGES = 16; // per demand fault: the faulting page and up to 15 after it
const PUSH_PAGES = 64; // background frame size
const HIGH_WATER = 256 * 1024; // source: keep little queued so demand frames go out quickly
const KIND = { demand: 1, background: 2 };

// ---- source ---------------------------------------------------------------------------------

function makeImage(size) {
  const image = crypto.randomFillSync(Buffer.allocUnsafe(size));
  // Some structure, as memory has: every 8th page zero, every 5th page repeats a byte.
  for (let p = 0; p < size / PAGE; p++) {
    if (p % 8 === 0) image.fill(0, p * PAGE, (p + 1) * PAGE);
    else if (p % 5 === 0) image.fill(p & 0xff, p * PAGE, (p + 1) * PAGE);
  }
  return image;
}

function runSource(opts) {
  const size = opts.size;
  const image = makeImage(size);
  const checksum = crypto.createHash('sha256').update(image).digest();
  const pages = size / PAGE;
  const hello = Buffer.alloc(16 + 32);
  hello.writeBigUInt64LE(BigInt(size), 8);
  checksum.copy(hello, 16);
  // One migration at a time: a 'P' connection starts it, the 'B' connection that follows
  // pushes what the demand channel has not sent.
  let sent = new Uint8Array(pages);

  const frame = (sock, kind, first, count) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(kind, 0);
    h.writeUInt32LE(count, 4);
    h.writeBigUInt64LE(BigInt(first), 8);
    sent.fill(1, first, first + count);
    sock.write(h);
    return sock.write(image.subarray(first * PAGE, (first + count) * PAGE));
  };

  const onDemand = (sock, records) => {
    for (let o = 0; o + 12 <= records.length; o += 12) {
      const first = Number(records.readBigUInt64LE(o));
      const count = Math.min(records.readUInt32LE(o + 8), pages - first);
      // Sent on demand even if the background pass sent it already: that copy may still be
      // queued behind others; the destination treats a second copy as done (EEXIST).
      if (first < pages && count > 0) frame(sock, KIND.demand, first, count);
    }
  };

  const startBackground = (sock) => {
    let cursor = 0;
    const pump = () => {
      while (sock.writableLength < HIGH_WATER && !sock.destroyed) {
        while (cursor < pages && sent[cursor]) cursor++;
        if (cursor >= pages) {
          sock.end();
          return;
        }
        let end = cursor;
        while (end < pages && end - cursor < PUSH_PAGES && !sent[end]) end++;
        frame(sock, KIND.background, cursor, end - cursor);
      }
    };
    sock.on('drain', pump);
    pump();
  };

  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => sock.destroy());
    let mode = null;
    let pending = Buffer.alloc(0);
    sock.on('data', (d) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      if (mode === null) {
        mode = String.fromCharCode(pending[0]);
        pending = pending.subarray(1);
        if (mode === 'P') {
          sent = new Uint8Array(pages);
          sock.write(hello);
        } else if (mode === 'B') {
          startBackground(sock);
        } else if (mode === 'F') {
          sock.write(hello);
          sock.end(image);
        } else {
          sock.destroy();
        }
      }
      if (mode !== 'P') return;
      const whole = pending.length - (pending.length % 12);
      onDemand(sock, pending.subarray(0, whole));
      pending = pending.subarray(whole);
    });
  });
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port} ${checksum.toString('hex')}\n`);
    idle();
  });
  // It waits for its destination: armed whenever no connection is open, the timer ends the
  // source after --wait seconds of nobody (with an error if nobody came at all).
  let open = 0;
  let migrated = false;
  let timer = null;
  const idle = () => {
    timer = setTimeout(() => {
      if (!migrated) {
        process.stderr.write(`postcopy source: no destination connected within ${opts.waitS} s; start one with ` +
          `\`node examples/postcopy/index.js destination --port ${server.address().port}\`, or give a longer --wait\n`);
        process.exitCode = 1;
      }
      server.close();
    }, opts.waitS * 1000);
  };
  server.on('close', () => clearTimeout(timer));
  server.on('connection', (sock) => {
    clearTimeout(timer);
    open++;
    sock.once('data', (d) => {
      if (d[0] === 'P'.charCodeAt(0)) migrated = true;
      // The full copy is the destination's last request: once it is sent, the source is done.
      if (d[0] === 'F'.charCodeAt(0)) sock.once('close', () => server.close());
    });
    sock.once('close', () => {
      if (--open === 0 && server.listening) idle();
    });
  });
}

// ---- destination ----------------------------------------------------------------------------

/** Reads frames off a socket: calls onHello(size, checksum) once, then onFrame(kind, first, count, bytes). */
function frameReader(onHello, onFrame) {
  let chunks = [];
  let have = 0;
  let helloDone = onHello === null;
  let header = null;
  const take = (n) => {
    const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have);
    const out = buf.subarray(0, n);
    const rest = buf.subarray(n);
    chunks = rest.length ? [rest] : [];
    have = rest.length;
    return out;
  };
  return (d) => {
    chunks.push(d);
    have += d.length;
    for (;;) {
      if (!helloDone) {
        if (have < 48) return;
        const h = take(48);
        helloDone = true;
        onHello(Number(h.readBigUInt64LE(8)), Buffer.from(h.subarray(16, 48)));
        continue;
      }
      if (header === null) {
        if (have < 16) return;
        const h = take(16);
        header = { kind: h.readUInt32LE(0), count: h.readUInt32LE(4), first: Number(h.readBigUInt64LE(8)) };
      }
      const bytes = header.count * PAGE;
      if (have < bytes) return;
      const data = take(bytes);
      const { kind, first, count } = header;
      header = null;
      onFrame(kind, first, count, data);
    }
  };
}

async function runDestination(opts) {
  const { Userfaultfd } = require('userfaultfd');
  const t0 = performance.now();
  const sock = net.connect(opts.port, opts.host);
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (e) => reject(e.code === 'ECONNREFUSED' ? usageError(`nothing is listening on ${opts.host}:${opts.port}: ` +
      `start the source first (node examples/postcopy/index.js source --port ${opts.port}) and give its port`) : e));
  });
  sock.write('P');

  let size = 0;
  let sourceChecksum = null;
  let start = 0n;
  let pages = 0;
  let placement = null; // which pages are in; places the frames
  let present = null; // placement.present
  let requested = null;
  const counts = { demandFaults: 0, requests: 0, requestWrites: 0 };
  let uffd = null;
  let worker = null;
  const queued = [];
  let flushScheduled = false;

  const flush = () => {
    flushScheduled = false;
    if (queued.length === 0) return;
    const buf = Buffer.alloc(12 * queued.length);
    queued.forEach(([first, count], i) => {
      buf.writeBigUInt64LE(BigInt(first), i * 12);
      buf.writeUInt32LE(count, i * 12 + 8);
    });
    counts.requests += queued.length;
    counts.requestWrites++;
    queued.length = 0;
    sock.write(buf);
  };

  const onFault = (f) => {
    counts.demandFaults++;
    const page = Number((f.address - start) / BigInt(PAGE));
    if (present[page] || requested[page]) return; // on its way: its copy wakes this thread too
    let end = page;
    while (end < pages && end - page < READAHEAD_PAGES && !present[end] && !requested[end]) end++;
    requested.fill(1, page, end);
    queued.push([page, end - page]);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush); // every fault of this event-loop turn in one write
    }
  };

  const onFrame = (kind, first, count, data) => placement.frame(kind === KIND.demand, first, count, data);

  let workerReady;
  const helloSeen = new Promise((resolve) => {
    sock.on('data', frameReader((sz, sum) => {
      size = sz;
      sourceChecksum = sum.toString('hex');
      resolve();
    }, onFrame));
  });
  let bg = null;
  sock.on('close', () => {
    if (placement && !placement.done && uffd && !uffd.closed) {
      process.stderr.write(`postcopy: the source hung up with ${pages - placement.inCount} pages missing\n`);
      placement.finish();
      uffd.close(); // wakes the workload: it reads zeros and the checksum tells
    }
  });
  await helloSeen;
  pages = size / PAGE;
  requested = new Uint8Array(pages);

  // The Worker maps the region; this thread registers it and answers its faults.
  worker = new Worker(__filename, { workerData: { role: 'workload', size } });
  const fromWorker = (type) => new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.type === type) {
        worker.off('message', onMsg);
        resolve(m);
      }
    };
    worker.on('message', onMsg);
    worker.once('error', reject);
  });
  workerReady = await fromWorker('mapped');
  start = workerReady.address;
  uffd = Userfaultfd.open();
  uffd.register({ start, length: size });
  placement = new Placement(uffd, start, pages);
  present = placement.present;
  uffd.on('pagefault', onFault);
  // Registered: the background pass may start, on a connection of its own so that demand
  // pages never queue behind pushed ones (QEMU's postcopy-preempt channel does the same).
  bg = net.connect(opts.port, opts.host);
  bg.on('error', () => {});
  bg.on('data', frameReader(null, onFrame));
  bg.write('B');
  const tStart = performance.now();
  const workloadDone = fromWorker('workload');
  worker.postMessage({ type: 'go', tStart: performance.timeOrigin + tStart });
  const w = await workloadDone;
  await placement.allIn; // from here no frame is placed: the Worker may unmap the region
  const tAllIn = performance.now();
  const sumMsg = fromWorker('checksum');
  worker.postMessage({ type: 'checksum' });
  const { checksum } = await sumMsg;
  await worker.terminate();
  uffd.close();
  sock.destroy();
  bg.destroy();

  // For comparison: the same image copied in full before anything could run.
  const tPre = performance.now();
  const pre = net.connect(opts.port, opts.host);
  pre.write('F');
  let got = 0;
  await new Promise((resolve, reject) => {
    pre.on('data', (d) => { got += d.length; });
    pre.on('end', resolve);
    pre.on('error', reject);
  });
  const precopyMs = performance.now() - tPre;
  if (got !== size + 48) throw new Error(`pre-copy got ${got} bytes`);

  return {
    size,
    pages,
    sourceChecksum,
    destinationChecksum: checksum,
    match: checksum === sourceChecksum,
    demandFaults: counts.demandFaults,
    pagesOnDemand: placement.counts.demandPages,
    pagesInBackground: placement.counts.backgroundPages,
    pagesAlreadyThere: placement.counts.alreadyThere,
    requests: counts.requests,
    requestWrites: counts.requestWrites,
    workloadStartMs: w.startMs,
    firstAccessMs: w.firstAccessMs,
    workloadMs: w.workloadMs,
    workloadTouches: w.touches,
    allPagesInMs: tAllIn - tStart,
    precopyMs,
    connectMs: tStart - t0,
  };
}

// ---- the workload (in the Worker) -------------------------------------------------------------

function runWorkload() {
  const { Region } = require('userfaultfd');
  const region = Region.map(workerData.size);
  parentPort.postMessage({ type: 'mapped', address: region.address });
  parentPort.on('message', (m) => {
    if (m.type === 'go') {
      const view = new Uint8Array(region.buffer);
      const pages = workerData.size / PAGE;
      const now = () => performance.timeOrigin + performance.now() - m.tStart;
      // A "guest" at work: a hot spot first (the first touch is the latency that matters),
      // then random pages, then a scan of a quarter of memory. Reads only: the checksum must
      // match the source's.
      const goMs = now();
      let acc = view[(pages >> 1) * PAGE + 123];
      const firstAccessMs = now() - goMs; // the workload runs at once; its first touch waits for one page
      let seed = 12345;
      const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) % pages;
      let touches = 1;
      for (let i = 0; i < 2000; i++, touches++) acc ^= view[rnd() * PAGE + (i % PAGE)];
      for (let p = 0; p < pages / 4; p++, touches++) acc ^= view[p * PAGE];
      parentPort.postMessage({ type: 'workload', startMs: goMs, firstAccessMs, workloadMs: now(), touches, acc });
    } else if (m.type === 'checksum') {
      const checksum = crypto.createHash('sha256').update(new Uint8Array(region.buffer)).digest('hex');
      region.unmap();
      parentPort.postMessage({ type: 'checksum', checksum });
    }
  });
}

// ---- both sides, spawned ------------------------------------------------------------------------

function spawnRole(args, timeoutMs) {
  const child = spawn(process.execPath, [__filename, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  child.on('exit', () => clearTimeout(timer));
  return child;
}

function firstLine(stream) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        stream.off('data', onData);
        resolve(buf.slice(0, i));
      }
    };
    stream.on('data', onData);
    stream.on('end', () => reject(new Error('no output')));
  });
}

async function runBoth(opts) {
  const source = spawnRole(['source', '--size', String(opts.sizeMiB)], 120000);
  source.stdin.end();
  try {
    const [, port, sum] = (await firstLine(source.stdout)).split(' ');
    const dest = spawnRole(['destination', '--port', port], 120000);
    dest.stdin.end();
    const line = await firstLine(dest.stdout);
    const code = await new Promise((resolve) => dest.on('exit', (c, s) => resolve(s ? 128 : c)));
    if (code !== 0) throw new Error(`the destination exited with ${code}`);
    const r = JSON.parse(line);
    r.sourceChecksumPrinted = sum;
    r.match = r.match && sum === r.destinationChecksum;
    return r;
  } finally {
    if (source.exitCode === null) source.kill();
  }
}

function report(r) {
  const mib = (r.size / (1 << 20)).toFixed(0);
  return [
    `post-copy of ${mib} MiB over TCP loopback: checksum ${r.match ? 'MATCH' : 'MISMATCH'} (${r.destinationChecksum.slice(0, 16)}…)`,
    `  pages fetched on demand: ${r.pagesOnDemand} (${r.demandFaults} faults, ${r.requests} requests in ${r.requestWrites} writes, read-ahead ${READAHEAD_PAGES} pages)`,
    `  pages pushed in background: ${r.pagesInBackground}; already there when their frame came: ${r.pagesAlreadyThere}`,
    `  time to first access: ${r.firstAccessMs.toFixed(2)} ms post-copy (the workload starts at once, its first touch waits for one page)`,
    `                        vs ${r.precopyMs.toFixed(2)} ms with a full pre-copy (nothing runs until every page is in)`,
    `  workload done at ${r.workloadMs.toFixed(1)} ms (${r.workloadTouches} touches); every page in at ${r.allPagesInMs.toFixed(1)} ms`,
  ].join('\n');
}

const USAGE = `usage: node examples/postcopy/index.js [--size MiB] [--json]
       node examples/postcopy/index.js source [--size MiB] [--port N] [--wait S]
       node examples/postcopy/index.js destination --port N [--host H]
Without a role, spawns a source and a destination and prints what the migration cost.
The source serves one destination: it waits --wait seconds (default 60) for it to connect.`;

/** An error the user can fix: printed as one line, without a stack. */
function usageError(message) {
  return Object.assign(new Error(message), { usage: true });
}

/** The command line, or null after printing usage (--help, or a mistake: one line, no stack). */
function args() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        size: { type: 'string', default: '64' },
        port: { type: 'string', default: '0' },
        host: { type: 'string', default: '127.0.0.1' },
        wait: { type: 'string', default: '60' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`postcopy: ${e.message}\n${USAGE}\n`);
    process.exitCode = 2;
    return null;
  }
}

async function main() {
  const parsed = args();
  if (parsed === null) return undefined;
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const sizeMiB = Number(values.size);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1) throw usageError('--size: a whole number of MiB');
  const role = positionals[0];
  const waitS = Number(values.wait);
  if (!(waitS > 0)) throw usageError('--wait: a number of seconds > 0');
  if (role === 'source') return runSource({ size: sizeMiB << 20, port: Number(values.port), waitS });
  if (role === 'destination') {
    const r = await runDestination({ port: Number(values.port), host: values.host });
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exitCode = r.match ? 0 : 1;
    return undefined;
  }
  if (role !== undefined) throw usageError(`unknown role ${role}: source, destination, or nothing`);
  const r = await runBoth({ sizeMiB });
  process.stdout.write((values.json ? JSON.stringify(r) : report(r)) + '\n');
  process.exitCode = r.match ? 0 : 1;
  return undefined;
}

if (isMainThread) {
  main().catch((e) => {
    process.stderr.write(`postcopy: ${e.usage ? e.message : e.stack || e}\n`);
    process.exitCode = 1;
  });
} else if (workerData && workerData.role === 'workload') {
  runWorkload();
}
