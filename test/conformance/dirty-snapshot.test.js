// Issue 16: dirty tracking (dirtyPages over WP_ASYNC) and live snapshots, on both backends.
// Writes here go through region.write (the thread pool, or the simulator's page tables);
// Workers and huge pages are in test/native/dirty-snapshot.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { UffdError } = require('../../dist');
const { describeBackends, requireFeature, PAGE, perTestUffd } = require('../helpers');

const TRACK = { features: ['WP_ASYNC', 'WP_UNPOPULATED'] };

/** Runs as page numbers relative to the region: [[first, count], ...]. */
function pages(region, runs) {
  return runs.map((r) => {
    assert.strictEqual(typeof r.start, 'bigint');
    return [Number(r.start - region.address) / PAGE, r.length / PAGE];
  });
}

function tmpFile(name) {
  return path.join(os.tmpdir(), `uffd-snap-${process.pid}-${name}`);
}

describeBackends('dirtyPages', (backend) => {
  const map = perTestUffd(backend);

  /** A uffd tracking a fresh region of `n` pages, armed. */
  function tracked(n, o) {
    requireFeature(this, backend, 'WP_ASYNC');
    requireFeature(this, backend, 'WP_UNPOPULATED');
    const u = map.open(TRACK);
    const r = map(n, o);
    u.register(r, { wp: true });
    u.writeProtect(r, { protect: true });
    return { u, r };
  }

  it('reports nothing for an armed range nobody wrote, untouched pages included', function () {
    const { u, r } = tracked.call(this, 16);
    assert.deepStrictEqual(u.dirtyPages(r), []);
  });

  it('reports single bytes as their pages and whole runs as one merged run', async function () {
    const { u, r } = tracked.call(this, 64);
    await r.write(5 * PAGE + 7, Buffer.from([1]));
    await r.write(6 * PAGE + PAGE - 1, Buffer.from([1])); // adjacent to page 5: merged
    await r.write(10 * PAGE, Buffer.alloc(5 * PAGE, 1));
    await r.write(63 * PAGE + 100, Buffer.from([1, 2, 3]));
    assert.deepStrictEqual(pages(r, u.dirtyPages(r)), [[5, 2], [10, 5], [63, 1]]);
  });

  it('a write across a page boundary dirties both pages', async function () {
    const { u, r } = tracked.call(this, 8);
    await r.write(3 * PAGE - 2, Buffer.from([1, 2, 3, 4]));
    assert.deepStrictEqual(pages(r, u.dirtyPages(r)), [[2, 2]]);
  });

  it('without reset it only looks; reset re-protects, so that the next call sees only later writes', async function () {
    const { u, r } = tracked.call(this, 32);
    await r.write(4 * PAGE, Buffer.alloc(3 * PAGE, 9));
    assert.deepStrictEqual(pages(r, u.dirtyPages(r)), [[4, 3]]);
    assert.deepStrictEqual(pages(r, u.dirtyPages(r)), [[4, 3]], 'a look changes nothing');
    assert.deepStrictEqual(pages(r, u.dirtyPages(r, { reset: true })), [[4, 3]]);
    assert.deepStrictEqual(u.dirtyPages(r), [], 'reset re-protected them');
    await r.write(5 * PAGE, Buffer.from([1]));
    await r.write(20 * PAGE, Buffer.from([1]));
    assert.deepStrictEqual(pages(r, u.dirtyPages(r, { reset: true })), [[5, 1], [20, 1]]);
    assert.deepStrictEqual(u.dirtyPages(r), []);
    // The bytes are the writes': tracking never changes memory.
    const b = await r.read(4 * PAGE, 3 * PAGE);
    assert.strictEqual(b[0], 9);
    assert.strictEqual(b[PAGE], 1);
    assert.strictEqual(b[2 * PAGE], 9);
  });

  it('reads do not dirty pages', async function () {
    const { u, r } = tracked.call(this, 8);
    await r.read(0, 8 * PAGE);
    assert.deepStrictEqual(u.dirtyPages(r), []);
  });

  it('scans a sub-range: runs are clipped to it', async function () {
    const { u, r } = tracked.call(this, 16);
    await r.write(2 * PAGE, Buffer.alloc(8 * PAGE, 1));
    const sub = { start: r.address + BigInt(4 * PAGE), length: 4 * PAGE };
    assert.deepStrictEqual(pages(r, u.dirtyPages(sub, { reset: true })), [[4, 4]]);
    assert.deepStrictEqual(pages(r, u.dirtyPages(r)), [[2, 2], [8, 2]]);
  });

  it('many separate runs (more than one scan buffer holds) all come back', async function () {
    const { u, r } = tracked.call(this, 2048);
    const writes = [];
    for (let p = 0; p < 2048; p += 2) writes.push(r.write(p * PAGE, Buffer.from([1])));
    await Promise.all(writes);
    const runs = pages(r, u.dirtyPages(r));
    assert.strictEqual(runs.length, 1024);
    assert.ok(runs.every(([first, n], i) => first === 2 * i && n === 1));
  });

  it('needs WP_ASYNC: EINVAL naming the features', async function () {
    const u = map.open();
    const r = map(4);
    u.register(r, { wp: true });
    assert.throws(() => u.dirtyPages(r), (e) => e instanceof UffdError && e.code === 'EINVAL' &&
      e.syscall === 'PAGEMAP_SCAN' && /WP_ASYNC/.test(e.message));
  });

  it('a range this uffd did not register for WP: ENOENT', function () {
    requireFeature(this, backend, 'WP_ASYNC');
    const u = map.open(TRACK);
    const r = map(4);
    assert.throws(() => u.dirtyPages(r), (e) => e instanceof UffdError && e.code === 'ENOENT' && e.syscall === 'PAGEMAP_SCAN');
    u.register(r, { missing: true });
    assert.throws(() => u.dirtyPages(r), (e) => e.code === 'ENOENT');
  });

  it('bad arguments throw before any scan; a closed uffd throws', function () {
    const { u, r } = tracked.call(this, 4);
    assert.throws(() => u.dirtyPages(r, { reset: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => u.dirtyPages(r, 'reset'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => u.dirtyPages({ start: r.address + 1n, length: PAGE }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => u.dirtyPages(null), { code: 'ERR_INVALID_ARG_TYPE' });
    u.close();
    assert.throws(() => u.dirtyPages(r), { code: 'ERR_UFFD_CLOSED' });
  });
});

describeBackends('snapshot', (backend) => {
  const map = perTestUffd(backend);
  let files;
  beforeEach(() => { files = []; });
  afterEach(() => {
    for (const f of files) fs.rmSync(f, { force: true });
  });
  const file = (name) => { const f = tmpFile(`${backend}-${name}`); files.push(f); return f; };

  it('writes the range\'s bytes to a path, untouched pages as zeros', async () => {
    const u = map.open();
    const r = map(64);
    const data = Buffer.alloc(40 * PAGE);
    for (let i = 0; i < data.length; i += 97) data[i] = (i / 97) & 0xff;
    await r.write(0, data);
    const f = file('path');
    const res = await u.snapshot(r, f);
    assert.strictEqual(res.bytes, 64 * PAGE);
    assert.strictEqual(typeof res.savedBeforeWrite, 'number');
    assert.strictEqual(typeof res.stallNs.p99, 'number');
    const img = fs.readFileSync(f);
    assert.strictEqual(img.length, 64 * PAGE);
    assert.ok(img.subarray(0, 40 * PAGE).equals(data));
    assert.ok(img.subarray(40 * PAGE).every((b) => b === 0));
  });

  it('writes to an fd from its current offset', async () => {
    const u = map.open();
    const r = map(4);
    await r.write(0, Buffer.alloc(4 * PAGE, 0x5a));
    const f = file('fd');
    const fd = fs.openSync(f, 'w+');
    try {
      fs.writeSync(fd, Buffer.from('HEADER--'));
      await u.snapshot(r, fd);
    } finally {
      fs.closeSync(fd);
    }
    const img = fs.readFileSync(f);
    assert.strictEqual(img.subarray(0, 8).toString(), 'HEADER--');
    assert.strictEqual(img.length, 8 + 4 * PAGE);
    assert.ok(img.subarray(8).every((b) => b === 0x5a));
  });

  it('holds a write that races the stream until its page is saved: the image has the old bytes, memory the new', async () => {
    const u = map.open();
    const r = map(2048);
    await r.write(0, Buffer.alloc(2048 * PAGE, 1));
    const f = file('race');
    const snap = u.snapshot(r, f);
    // Wait until the range is protected (a write after that is held), then write everywhere.
    await new Promise((resolve) => setImmediate(resolve));
    const writes = [];
    for (let p = 2047; p >= 0; p -= 7) writes.push(r.write(p * PAGE, Buffer.alloc(PAGE, 2)));
    const [res] = await Promise.all([snap, ...writes]);
    const img = fs.readFileSync(f);
    // Every page is all 1s or all 2s; and memory has the 2s.
    for (let p = 0; p < 2048; p++) {
      const pg = img.subarray(p * PAGE, (p + 1) * PAGE);
      assert.ok(pg.every((b) => b === pg[0]) && (pg[0] === 1 || pg[0] === 2), `page ${p} torn`);
    }
    const mem = await r.read(0, 2048 * PAGE);
    for (let p = 2047; p >= 0; p -= 7) assert.strictEqual(mem[p * PAGE], 2);
    assert.strictEqual(res.bytes, 2048 * PAGE);
  });

  it('leaves an unregistered range unregistered, and a MISSING registration as it was', async () => {
    const u = map.open();
    const r = map(8);
    await r.write(0, Buffer.alloc(8 * PAGE, 3));
    await u.snapshot(r, file('a'));
    assert.throws(() => u.writeProtect(r, { protect: true }), (e) => e.code === 'ENOENT', 'no WP registration left');
    u.register(r); // MISSING; every page is present
    await u.snapshot(r, file('b'));
    assert.throws(() => u.writeProtect(r, { protect: true }), (e) => e.code === 'ENOENT', 'WP was taken back');
    assert.throws(() => u.zeropage(r), (e) => e.code === 'EEXIST', 'still registered for MISSING');
    assert.ok(fs.readFileSync(files[1]).every((b) => b === 3));
    const after = await r.write(0, Buffer.alloc(PAGE, 4)).then(() => r.read(0, 1));
    assert.strictEqual(after[0], 4, 'writes go through once the promise settles');
  });

  it('refuses a uffd with WP_ASYNC, a bad destination, a pipe, and an overlapping snapshot', async function () {
    requireFeature(this, backend, 'WP_ASYNC');
    const r = map(4);
    await assert.rejects(map.open(TRACK).snapshot(r, file('x')), { code: 'ERR_UFFD_WP_ASYNC' });
    const u = map.open();
    await assert.rejects(u.snapshot(r, {}), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(u.snapshot(r, -1), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(u.snapshot({ start: r.address, length: 100 }, file('y')), { code: 'ERR_OUT_OF_RANGE' });
    const [rd, wr] = pipeFds();
    try {
      await assert.rejects(u.snapshot(r, wr), (e) => e instanceof UffdError && e.code === 'ESPIPE');
    } finally {
      fs.closeSync(rd);
      fs.closeSync(wr);
    }
    const big = map(4096);
    const first = u.snapshot(big, file('big'));
    await assert.rejects(u.snapshot(big, file('big2')), { code: 'ERR_UFFD_SNAPSHOT_BUSY' });
    await first;
  });
});

/** A pipe's two fds, through a child-free route: /proc on Linux, a FIFO elsewhere. */
function pipeFds() {
  const fifo = tmpFile(`fifo-${Math.random().toString(16).slice(2)}`);
  require('child_process').execFileSync('mkfifo', [fifo]);
  const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.rmSync(fifo);
  return [rd, wr];
}
