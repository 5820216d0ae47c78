// The first byte of background prefetch against lazy serving, measured apart from
// bench/working-set.js (issue 23, deliver 4): serve()'s own time, and the time from serve()'s
// call to the JS thread's first read of the set's first page, lazy and background prefetch
// alternating, --runs runs; min and median of each. The scattered workload's shape: a 512 MiB
// image (in the page cache), a set of 32768 single pages in a random order; background
// prefetch with the set's compact page file too (workingSet: { pages: true }).
//
// Usage: node bench/working-set-first-byte.js [--runs 61] [--dist dir]
//   --dist: another build's dist/ (e.g. an older commit's), to compare in the same conditions.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');

const { values } = parseArgs({ options: { runs: { type: 'string', default: '61' }, dist: { type: 'string' } } });
const dist = path.resolve(values.dist ?? path.join(__dirname, '..', 'dist'));
const { Userfaultfd, Region, PageSource, constants } = require(dist);
const { encodeWorkingSet } = require(path.join(dist, 'sources', 'working-set'));
const { writeSetPages } = require(path.join(dist, 'sources', 'set-pages'));

const PAGE = constants.pageSize;
const SIZE = 512 << 20;
const PAGES = SIZE / PAGE;
const SET_PAGES = Math.min(32768, PAGES / 4);
const FILL = 0x5a;

function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-fb-'));
  try {
    const image = path.join(dir, 'image.bin');
    const set = path.join(dir, 'set.uffdws');
    writeImage(image);
    const order = scattered(SET_PAGES);
    const bytes = encodeWorkingSet({
      pageSize: PAGE, sourceSize: SIZE, rangeLength: SIZE, generation: 1,
      runs: order.map((p) => ({ first: p, count: 1, write: false, age: 0 })),
    });
    fs.writeFileSync(set, bytes);
    const words = Uint32Array.from(order.flatMap((p) => [p, 1, 0]));
    writeSetPages(`${set}.pages`, words, bytes.readUInt32LE(bytes.length - 4), PageSource.file(image), PAGE);
    const variants = { lazy: {}, prefetch: { prefetch: set }, 'prefetch+pages': { prefetch: set, workingSet: { pages: true } } };
    const times = Object.fromEntries(Object.keys(variants).map((v) => [v, { serve: [], first: [] }]));
    const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
    for (let i = 0; i < Number(values.runs); i++) {
      for (const v of i % 2 ? ['lazy', 'prefetch', 'prefetch+pages'] : ['prefetch+pages', 'prefetch', 'lazy']) {
        const t = once(image, variants[v], order[0]);
        times[v].serve.push(t.serve);
        times[v].first.push(t.first);
      }
    }
    console.log(`${dist}: ${values.runs} runs each, load ${load} -> ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log('| variant | serve(), ms: min / median | first byte from serve()\'s call, ms: min / median |');
    console.log('|---|---:|---:|');
    for (const [v, t] of Object.entries(times)) console.log(`| ${v} | ${stat(t.serve)} | ${stat(t.first)} |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One serve() and the JS thread's first read of `page`; the byte is checked. */
function once(image, options, page) {
  const uffd = Userfaultfd.open();
  const region = Region.map(SIZE);
  try {
    const bytes = new Uint8Array(region.buffer);
    const t0 = process.hrtime.bigint();
    uffd.serve(region, PageSource.file(image), options);
    const t1 = process.hrtime.bigint();
    const b = bytes[page * PAGE];
    const t2 = process.hrtime.bigint();
    if (b !== FILL) throw new Error(`page ${page} read ${b}, not ${FILL}`);
    return { serve: Number(t1 - t0) / 1e6, first: Number(t2 - t0) / 1e6 };
  } finally {
    uffd.close();
    region.unmap();
  }
}

function writeImage(file) {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(8 << 20, FILL);
  for (let off = 0; off < SIZE; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
  fs.closeSync(fd);
}

/** `n` distinct pages of the image in a random order (a seeded generator: the same every run). */
function scattered(n) {
  let x = 12345;
  const pages = new Set();
  while (pages.size < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    pages.add(Math.floor((x / 2 ** 32) * PAGES));
  }
  return [...pages];
}

function stat(a) {
  const s = [...a].sort((p, q) => p - q);
  return `${s[0].toFixed(2)} / ${s[s.length >> 1].toFixed(2)}`;
}

main();
