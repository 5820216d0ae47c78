#!/usr/bin/env node
// test-requires: native linux
// test-args: --size 16 --write-set 5 --json
// test-timeout: 120000
// test-expect: "checksum":"match"
// Live migration over TCP (loopback): pre-copy rounds driven by dirty tracking, then a short
// stop (precopy) or a switch to post-copy for the last dirty set (postcopy-after-precopy).
//
//   node examples/migrate/index.js [--mode precopy|postcopy-after-precopy|stopcopy] [--size MiB]
//        [--write-set PERCENT] [--threshold KiB] [--max-rounds N] [--json]
//
// The source process maps a region in a Worker that keeps writing to a hot set of its pages
// (--write-set percent of them), and spawns the destination process. Then:
//   1. it arms dirty tracking (WP_ASYNC + WP_UNPOPULATED uffd, the range registered { wp } and
//      write-protected) and sends the whole region;
//   2. each pre-copy round sends what dirtyPages({ reset: true }) says was written meanwhile,
//      until the dirty set stops shrinking or falls under --threshold;
//   3. it stops the writer. precopy: sends the last dirty set, and the destination resumes once
//      it has it. postcopy-after-precopy (what QEMU calls hybrid, or pre-copy then post-copy):
//      sends only the list of dirty pages; the destination registers its
//      (still empty) region for missing faults and resumes at once: clean pages are placed from
//      its pre-copied image, dirty ones fetched on demand or pushed by the source.
//      stopcopy (for comparison): no pre-copy; stop, send everything, resume.
//      The names before these, still accepted: hybrid (= precopy), postcopy (=
//      postcopy-after-precopy).
//   4. the destination reads its whole memory (thread pool: faults there are answered by its
//      JS thread) and compares the sha256 with the source's.
// Prints rounds, bytes per round, downtime (writer stopped -> destination running) and total time.
//
// The source reads its own memory through /proc/self/mem, by address: no thread of this
// process faults, since WP_ASYNC resolves write faults in the kernel. Every fault here is
// raised in user mode (Worker stores, thread-pool copies), so both sides open user-mode-only
// userfaultfds, which need no privilege (vm.unprivileged_userfaultfd does not gate them).
//
// Wire format, source -> destination: frames of a 16-byte header (u8 type, 3 zero bytes,
// u32 count, u64 offset; little-endian) and a payload:
//   PAGES     count pages at byte offset `offset`, then their bytes
//   ROUND     end of pre-copy round `offset`; the destination answers with an ACK
//   FINISH    precopy/stopcopy: everything is sent: the destination resumes
//   SWITCH    postcopy-after-precopy: payload: `count` runs (u64 offset, u64 length) still to come: it resumes
//   CHECKSUM  the 32-byte sha256 of the source memory (computed after the destination resumed)
// destination -> source: ACK (u8 'A'), or REQUEST (u8 'R', u32 pages, u64 offset).
'use strict';

const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const { parseArgs } = require('util');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { Reader } = require('./reader');

const PAGE = uffdModule().constants.pageSize; // the kernel's base page: both ends run on this machine
const T = { PAGES: 1, ROUND: 2, FINISH: 3, SWITCH: 4, CHECKSUM: 5 };
const CHUNK = 1 << 20; // bytes per PAGES frame
const KERNEL = { backend: 'native' };
const UFFD = { backend: 'native', userModeOnly: true };
const MODES = ['precopy', 'postcopy-after-precopy', 'stopcopy'];
/** The names the modes had first: 'hybrid' was pre-copy with a short stop, 'postcopy' QEMU's hybrid. */
const MODE_ALIASES = { hybrid: 'precopy', postcopy: 'postcopy-after-precopy' };
const USAGE = `usage: node examples/migrate/index.js [options]
  --mode precopy|postcopy-after-precopy|stopcopy
                                   how the last dirty set moves (default precopy): precopy sends
                                   it during a short stop; postcopy-after-precopy resumes the
                                   destination at once and fetches it on demand; stopcopy sends
                                   everything during the stop (no pre-copy rounds). The older
                                   names hybrid (= precopy) and postcopy are still accepted
  --size MiB                       region size (default 64)
  --write-set PERCENT              share of pages the writer keeps rewriting (default 5)
  --threshold KiB                  stop pre-copy once a round's dirty set is this small (default 256)
  --max-rounds N                   at most this many pre-copy rounds (default 10)
  --push-delay MS                  postcopy-after-precopy: wait this long before pushing the last dirty set,
                                   so that the destination fetches more of it on demand (default 0)
  --json                           print one JSON line
  --help                           this text
roles (spawned by the above): destination --port N --size MiB --mode M`;

function uffdModule() {
  try {
    return require('userfaultfd');
  } catch {
    return require('../../dist');
  }
}

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      mode: { type: 'string', default: 'precopy' },
      size: { type: 'string', default: '64' },
      'write-set': { type: 'string', default: '5' },
      threshold: { type: 'string', default: '256' },
      'max-rounds': { type: 'string', default: '10' },
      'push-delay': { type: 'string', default: '0' },
      port: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const num = (name, min, max) => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be a number in [${min}, ${max}]`);
    return v;
  };
  const mode = MODE_ALIASES[values.mode] ?? values.mode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be ${MODES.join(', ')} (or the older hybrid, postcopy)`);
  return {
    role: positionals[0] ?? 'source',
    mode,
    size: Math.round(num('size', 1, 65536)) * 1024 * 1024,
    writeSet: num('write-set', 0, 100) / 100,
    threshold: num('threshold', 0, 1 << 30) * 1024,
    maxRounds: Math.round(num('max-rounds', 0, 1000)),
    pushDelay: num('push-delay', 0, 60000),
    port: values.port === undefined ? undefined : Number(values.port),
    json: values.json,
    help: values.help,
  };
}

// ---- framing ------------------------------------------------------------------------------------

function header(type, count, offset) {
  const h = Buffer.alloc(16);
  h.writeUInt8(type, 0);
  h.writeUInt32LE(count, 4);
  h.writeBigUInt64LE(BigInt(offset), 8);
  return h;
}

// ---- the writer (a Worker of the source) --------------------------------------------------------

function runWriter() {
  const { Region } = uffdModule();
  const { size, writeSet, control } = workerData;
  const region = Region.map(size, KERNEL);
  const mem = new Uint32Array(region.buffer);
  const flags = new Int32Array(control); // [0] 1: stop asked; [1] 1: stopped
  const pages = size / PAGE;
  // Some content everywhere, then a hot set rewritten in a loop.
  crypto.randomFillSync(new Uint8Array(region.buffer));
  const hot = [];
  for (let p = 0; p < pages; p++) if (((p * 2654435761) >>> 0) % 1000 < writeSet * 1000) hot.push(p);
  parentPort.postMessage({ address: region.address, length: region.length, hot: hot.length });
  let n = 0;
  while (Atomics.load(flags, 0) === 0) {
    for (let i = 0; i < hot.length && Atomics.load(flags, 0) === 0; i++) {
      const w = (hot[i] * PAGE) / 4 + (n++ % (PAGE / 4));
      mem[w] = (mem[w] + 1) >>> 0;
    }
    if (hot.length === 0) Atomics.wait(flags, 0, 0, 10);
  }
  Atomics.store(flags, 1, 1);
  Atomics.notify(flags, 1);
  // Stay, and keep the region referenced (its finalizer would unmap it), until the source has
  // read it and terminates this Worker.
  parentPort.on('message', () => region.length);
}

// ---- source ---------------------------------------------------------------------------------

async function runSource(opts) {
  const { Userfaultfd } = uffdModule();
  const control = new SharedArrayBuffer(8);
  const flags = new Int32Array(control);
  const writer = new Worker(__filename, { workerData: { role: 'writer', size: opts.size, writeSet: opts.writeSet, control } });
  const region = await new Promise((resolve, reject) => { writer.once('message', resolve); writer.once('error', reject); });
  const range = { start: region.address, length: region.length };
  const mem = fs.openSync('/proc/self/mem', 'r');
  const readMem = (offset, length, into) => {
    const buf = into ?? Buffer.allocUnsafe(length);
    for (let done = 0; done < length;) done += fs.readSync(mem, buf, done, length - done, Number(range.start) + offset + done);
    return buf;
  };

  const dest = spawn(process.execPath, [__filename, 'destination', '--size', String(opts.size / 1048576), '--mode', opts.mode],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    dest.stdout.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    dest.once('exit', (code) => reject(new Error(`destination exited (${code})`)));
  });
  let result = '';
  dest.stdout.on('data', (d) => { result += d; });
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const incoming = new Reader(sock);
  const send = (buf) => (sock.write(buf) ? null : new Promise((r) => sock.once('drain', r)));

  const sendRuns = async (runs) => {
    let bytes = 0;
    for (const run of runs) {
      const base = Number(run.start - range.start);
      for (let off = 0; off < run.length; off += CHUNK) {
        const len = Math.min(CHUNK, run.length - off);
        await send(header(T.PAGES, len / PAGE, base + off));
        await send(readMem(base + off, len));
        bytes += len;
      }
    }
    return bytes;
  };
  const whole = [{ start: range.start, length: range.length }];

  const t0 = process.hrtime.bigint();
  const rounds = [];
  const uffd = Userfaultfd.open({ ...UFFD, features: ['WP_ASYNC', 'WP_UNPOPULATED'] });
  uffd.register(range, { wp: true });
  if (opts.mode !== 'stopcopy') {
    uffd.writeProtect(range, { protect: true }); // armed: from here on, writes are tracked
    let runs = whole;
    let previous = Infinity;
    for (let round = 0; ; round++) {
      const bytes = await sendRuns(runs);
      await send(header(T.ROUND, 0, round));
      await incoming.read(1); // the destination has it
      rounds.push(bytes);
      // Look first: the set that ends pre-copy is sent after the stop, with what comes after it.
      const dirty = uffd.dirtyPages(range).reduce((s, r) => s + r.length, 0);
      if (dirty <= opts.threshold || dirty >= previous || round + 1 >= opts.maxRounds) break;
      previous = dirty;
      runs = uffd.dirtyPages(range, { reset: true });
    }
  }

  // Stop the writer: from here until the destination runs is the downtime.
  const stop = process.hrtime.bigint();
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  await Atomics.waitAsync(flags, 1, 0).value;
  const last = opts.mode === 'stopcopy' ? whole : uffd.dirtyPages(range, { reset: false });
  const lastBytes = last.reduce((s, r) => s + r.length, 0);
  let pushed = null;
  if (opts.mode === 'postcopy-after-precopy') {
    const list = Buffer.alloc(16 * last.length);
    last.forEach((r, i) => {
      list.writeBigUInt64LE(r.start - range.start, 16 * i);
      list.writeBigUInt64LE(BigInt(r.length), 16 * i + 8);
    });
    await send(header(T.SWITCH, last.length, 0));
    await send(list);
    // Demand requests are answered as they come; what nobody asked for is pushed meanwhile.
    pushed = servePostcopy(incoming, send, readMem);
    if (opts.pushDelay > 0) await new Promise((r) => setTimeout(r, opts.pushDelay));
  }
  await sendRuns(last);
  if (opts.mode !== 'postcopy-after-precopy') await send(header(T.FINISH, 0, 0));
  // The destination runs already: the checksum of the (frozen) source memory follows.
  const checksum = crypto.createHash('sha256');
  const all = Buffer.allocUnsafe(CHUNK);
  for (let off = 0; off < range.length; off += CHUNK) checksum.update(readMem(off, Math.min(CHUNK, range.length - off), all));
  const sum = checksum.digest();
  await send(header(T.CHECKSUM, 0, 0));
  await send(sum);
  await pushed;
  sock.end();
  await new Promise((r) => dest.once('exit', r));
  uffd.close();
  fs.closeSync(mem);
  await writer.terminate();
  const report = JSON.parse(result.trim().split('\n').pop());
  const t1 = process.hrtime.bigint();
  return {
    mode: opts.mode,
    sizeBytes: opts.size,
    writeSet: opts.writeSet,
    rounds: rounds.length,
    bytesPerRound: rounds,
    lastDirtyBytes: lastBytes,
    downtimeMs: Number(BigInt(report.resumedAtNs) - stop) / 1e6,
    totalMs: Number(t1 - t0) / 1e6,
    demandFaults: report.demandFaults,
    checksum: report.checksum === sum.toString('hex') ? 'match' : 'MISMATCH',
  };
}

/** Source, post-copy: answers the destination's page requests until it closes. */
async function servePostcopy(incoming, send, readMem) {
  for (;;) {
    let kind;
    try {
      kind = (await incoming.read(1))[0];
    } catch {
      return; // the destination has everything and closed
    }
    if (kind !== 0x52) continue; // 'R'
    const req = await incoming.read(12);
    const pages = req.readUInt32LE(0);
    const offset = Number(req.readBigUInt64LE(4));
    await send(header(T.PAGES, pages, offset));
    await send(readMem(offset, pages * PAGE));
  }
}

// ---- destination ----------------------------------------------------------------------------

async function runDestination(opts) {
  const { Userfaultfd, Region } = uffdModule();
  const region = Region.map(opts.size, KERNEL);
  // Post-copy keeps the pre-copied pages aside: at the switch the region is registered whole
  // and empty, so that nothing has to be dropped from it (one MADV_DONTNEED per dirty run, each
  // with its TLB shootdown, made the stop longer than a precopy one). Its faults are answered
  // from here for clean pages and from the source for dirty ones; a background pass fills the rest.
  const staging = opts.mode === 'postcopy-after-precopy' ? Buffer.alloc(opts.size) : Buffer.from(region.buffer);
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  console.log(`listening ${server.address().port}`);
  const sock = await new Promise((r) => server.once('connection', r));
  server.close();
  sock.setNoDelay(true);
  const incoming = new Reader(sock);
  let uffd = null;
  let demandFaults = 0;
  let resumedAtNs;
  let expected;
  const pages = opts.size / PAGE;
  const arrived = new Uint8Array(pages); // post-copy: placed in the region
  const dirty = new Uint8Array(pages); // post-copy: still to come from the source
  let missing = pages;
  let verifying = null;

  const finished = () => missing === 0 && expected !== undefined;

  // Post-copy: places `count` pages from `src` at page `first`, skipping pages already there.
  function place(first, count, src) {
    try {
      uffd.copy(region.address + BigInt(first * PAGE), src.subarray(0, count * PAGE));
      for (let p = first; p < first + count; p++) if (!arrived[p]) { arrived[p] = 1; missing--; }
      return;
    } catch (e) {
      if (e.code !== 'EEXIST' && e.code !== 'EAGAIN') throw e;
    }
    for (let p = first; p < first + count; p++) { // a fault placed some of them first
      if (arrived[p]) continue;
      try {
        uffd.copy(region.address + BigInt(p * PAGE), src.subarray((p - first) * PAGE, (p - first + 1) * PAGE));
      } catch (e) {
        if (e.code !== 'EEXIST') throw e;
      }
      arrived[p] = 1;
      missing--;
    }
  }

  function switchToPostcopy(list, count) {
    for (let i = 0; i < count; i++) {
      const first = Number(list.readBigUInt64LE(16 * i)) / PAGE;
      dirty.fill(1, first, first + Number(list.readBigUInt64LE(16 * i + 8)) / PAGE);
    }
    uffd = Userfaultfd.open(UFFD);
    uffd.register(region, { missing: true });
    uffd.on('pagefault', (e) => {
      const page = Number(e.address - region.address) / PAGE;
      if (arrived[page]) return void uffd.wake({ start: region.address + BigInt(page * PAGE), length: PAGE });
      if (!dirty[page]) return void place(page, 1, staging.subarray(page * PAGE));
      demandFaults++;
      const req = Buffer.alloc(13);
      req.write('R', 0);
      req.writeUInt32LE(1, 1);
      req.writeBigUInt64LE(BigInt(page * PAGE), 5);
      sock.write(req);
    });
    resumedAtNs = process.hrtime.bigint();
    verifying = verify();
    fillClean();
  }

  // Post-copy: the clean pages go in behind the workload, a run at a time between faults.
  async function fillClean() {
    for (let p = 0; p < pages;) {
      while (p < pages && (dirty[p] || arrived[p])) p++;
      let end = p;
      while (end < pages && end - p < 256 && !dirty[end] && !arrived[end]) end++;
      if (end > p) place(p, end - p, staging.subarray(p * PAGE));
      p = end;
      await new Promise((r) => setImmediate(r));
    }
    if (finished()) sock.end();
  }

  // Frames until the last one; in post-copy, pages arrive after the switch too.
  const frames = (async () => {
    for (;;) {
      let h;
      try {
        h = await incoming.read(16);
      } catch {
        return;
      }
      const type = h[0];
      const count = h.readUInt32LE(4);
      const offset = Number(h.readBigUInt64LE(8));
      if (type === T.PAGES) {
        const data = await incoming.read(count * PAGE);
        if (uffd === null) {
          data.copy(staging, offset); // before any switch nothing is registered: a plain copy
        } else {
          for (let p = 0; p < count; p++) dirty[offset / PAGE + p] = 0; // now it is here
          place(offset / PAGE, count, data);
          if (finished()) sock.end();
        }
      } else if (type === T.ROUND) {
        sock.write('A');
      } else if (type === T.FINISH) {
        resumedAtNs = process.hrtime.bigint();
        verifying = verify();
      } else if (type === T.CHECKSUM) {
        expected = (await incoming.read(32)).toString('hex');
        if (uffd === null) return;
        if (finished()) sock.end();
      } else if (type === T.SWITCH) {
        switchToPostcopy(await incoming.read(16 * count), count);
      }
    }
  })();

  // The workload resumes: here it reads everything back (on the thread pool) and checksums it.
  async function verify() {
    const hash = crypto.createHash('sha256');
    for (let off = 0; off < opts.size; off += CHUNK) hash.update(await region.read(off, Math.min(CHUNK, opts.size - off)));
    return hash.digest('hex');
  }
  await frames;
  const checksum = await (verifying ?? verify());
  if (uffd) uffd.close();
  sock.end();
  region.unmap();
  console.log(JSON.stringify({ checksum: checksum === expected ? expected : checksum, resumedAtNs: String(resumedAtNs), demandFaults }));
}

// ---- main -----------------------------------------------------------------------------------

function print(r, json) {
  if (json) {
    console.log(JSON.stringify(r));
    return;
  }
  const mib = (b) => (b / 1048576).toFixed(2);
  console.log(`migrated ${mib(r.sizeBytes)} MiB (${(r.writeSet * 100).toFixed(0)}% write set), mode ${r.mode}`);
  r.bytesPerRound.forEach((b, i) => console.log(`  round ${i}: ${mib(b)} MiB`));
  console.log(`  last dirty set: ${mib(r.lastDirtyBytes)} MiB${r.mode === 'postcopy-after-precopy' ? ` (${r.demandFaults} demand faults)` : ''}`);
  console.log(`  downtime ${r.downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(1)} ms`);
  console.log(`  checksum ${r.checksum === 'match' ? 'MATCH' : 'MISMATCH'}`);
}

if (!isMainThread) {
  if (workerData.role === 'writer') runWriter();
} else {
  let opts;
  try {
    opts = options();
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log(USAGE);
  } else {
    const run = opts.role === 'destination' ? runDestination(opts) : runSource(opts).then((r) => {
      print(r, opts.json);
      if (r.checksum !== 'match') process.exitCode = 1;
    });
    run.catch((e) => {
      console.error(e);
      process.exit(1);
    });
  }
}
