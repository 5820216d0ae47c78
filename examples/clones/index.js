#!/usr/bin/env node
// test-args: --size 16
// test-timeout: 60000
// test-requires: native linux
// test-expect: bytes right in 8 of 8 clones
// One image, many clones: a snapshot file served as one SharedImage to 8 child processes, each
// of which maps it, reads the same quarter of it, writes a little of its own, and says what its
// mapping holds. The image is read from the file once, and held in memory once: the clones'
// pages are the image's own (shared, clean), except the few each one wrote (private copies).
//
//   node examples/clones/index.js [--size MiB] [--clones N] [--touch FRACTION] [--mode missing|minor]
//
// The parent listens with listenForUffd(path, { image }): each child that connects gets the
// image's read-only memfd, maps it privately and sends its userfaultfd back
// (attachSharedImage), and the parent serves its faults natively from then on. Against 8
// private copies (serve() per clone, as before) the machine holds 1 image instead of 8.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { fork } = require('child_process');
const { parseArgs } = require('util');
const { SharedImage, PageSource, listenForUffd, attachSharedImage, constants } = require('../..');

const { values: opts } = parseArgs({
  options: {
    size: { type: 'string', default: '64' },
    clones: { type: 'string', default: '8' },
    touch: { type: 'string', default: '0.25' },
    mode: { type: 'string', default: 'missing' },
    clone: { type: 'string' }, // internal: this process is a clone; the value is the socket
    file: { type: 'string' },
  },
});
const PAGE = constants.pageSize;
const MiB = 1 << 20;

/** The smaps fields (bytes) of this process's mapping that starts at `address`. */
function mapping(address) {
  const lines = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${address.toString(16)}-`));
  const out = {};
  for (let k = i + 1; k < lines.length && /^[A-Z]\w*:/.test(lines[k]); k++) {
    const m = /^(\w+):\s+(\d+) kB/.exec(lines[k]);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

/** A clone: attach, read the first `touch` of the image (every page), write one page, report. */
async function clone() {
  const image = await attachSharedImage(opts.clone);
  const expected = fs.readFileSync(opts.file);
  const touched = Math.floor((image.size * Number(opts.touch)) / PAGE) * PAGE;
  // The memory is served by the parent (another process): this thread may touch it directly.
  const view = Buffer.from(image.region.buffer, 0, touched);
  const right = view.equals(expected.subarray(0, touched));
  view.write(`clone ${process.pid} was here`, 0); // a private copy of page 0, for this clone only
  process.send({ right, touched });
  // Wait until every clone has touched: then each mapping's PSS shows the pages shared by all.
  await new Promise((resolve) => process.once('message', resolve));
  process.send(mapping(image.region.address));
  await new Promise((resolve) => process.once('message', resolve));
  image.close();
}

async function parent() {
  const size = Number(opts.size) * MiB;
  const n = Number(opts.clones);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-clones-'));
  const file = path.join(dir, 'snapshot.bin');
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) bytes.writeUInt32LE(i >>> 2, i);
  fs.writeFileSync(file, bytes);
  const sock = path.join(dir, 'image.sock');
  const image = SharedImage.create(PageSource.file(file), { mode: opts.mode });
  const listener = listenForUffd(sock, { image });
  try {
    const children = Array.from({ length: n }, () => fork(__filename, ['--clone', sock, '--file', file, '--touch', opts.touch]));
    const next = (c) => new Promise((resolve, reject) => {
      c.once('message', resolve);
      c.once('exit', (code) => reject(new Error(`a clone exited with ${code}`)));
    });
    const touched = await Promise.all(children.map(next));
    const memory = await Promise.all(children.map((c) => {
      const m = next(c);
      c.send('report');
      return m;
    }));
    const s = image.stats();
    const right = touched.filter((t) => t.right).length;
    const privateBytes = memory.reduce((sum, m) => sum + m.Anonymous, 0);
    const total = s.residentBytes + privateBytes;
    // serve() per clone copies what the image holds (the same read-ahead) into every clone.
    const copies = n * s.sourceBytes;
    console.log(`image: ${opts.size} MiB, mode '${image.mode}'; each clone read ${(touched[0].touched / MiB).toFixed(1)} MiB of it`);
    console.log('clone   resident  PSS (its share)  private');
    memory.forEach((m, i) => console.log(`${String(i + 1).padStart(5)} ${(m.Rss / MiB).toFixed(1).padStart(8)} MiB ${(m.Pss / MiB).toFixed(1).padStart(8)} MiB ${(m.Anonymous / 1024).toFixed(0).padStart(8)} KiB`));
    console.log(`read from the file: ${(s.sourceBytes / MiB).toFixed(1)} MiB, once (${n} private copies: ${(copies / MiB).toFixed(1)} MiB, each clone reading its own)`);
    console.log(`memory used: ${(total / MiB).toFixed(1)} MiB (the image ${(s.residentBytes / MiB).toFixed(1)} MiB, read-ahead included, + the clones' ` +
      `private pages ${(privateBytes / MiB).toFixed(2)} MiB), against ${(copies / MiB).toFixed(1)} MiB for ${n} private copies: ${(copies / total).toFixed(1)}x less`);
    console.log(`bytes right in ${right} of ${n} clones`);
    for (const c of children) c.send('exit');
    await Promise.all(children.map((c) => new Promise((resolve) => c.once('exit', resolve))));
    if (right !== n) process.exitCode = 1;
  } finally {
    listener.close();
    image.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(opts.clone ? clone() : parent()).catch((e) => {
  console.error(e);
  process.exit(1);
});
