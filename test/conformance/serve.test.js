// uffd.serve(): behaviour both backends share. Memory is touched with region.read/write only
// (off the JS thread on the kernel; the simulator answers the same way).
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { PAGE, pattern, delay, describeBackends } = require('../helpers');

describeBackends('serve: page sources', (backend) => {
  let dir;
  let file;
  let data;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-serve-conf-'));
    file = path.join(dir, 'data.bin');
    data = pattern(64 * PAGE, 21);
    fs.writeFileSync(file, data);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function withServed(length, fn, openOptions = {}) {
    const uffd = Userfaultfd.open({ backend, ...openOptions });
    const region = Region.map(length, { backend });
    try {
      await fn(uffd, region);
    } finally {
      uffd.close();
      region.unmap();
    }
  }

  const sources = {
    zero: () => [PageSource.zero(), Buffer.alloc(32 * PAGE)],
    buffer: () => {
      const b = pattern(32 * PAGE, 4);
      return [PageSource.buffer(b), b];
    },
    'file by path': () => [PageSource.file(file), data.subarray(0, 32 * PAGE)],
    'file with offset': () => [PageSource.file(file, { offset: 5 * PAGE + 7 }), data.subarray(5 * PAGE + 7, 37 * PAGE + 7)],
  };
  for (const [name, make] of Object.entries(sources)) {
    for (const readahead of [false, 8 * PAGE, 'adaptive']) {
      it(`${name}, readahead ${readahead}: reads return the source's bytes`, () => withServed(32 * PAGE, async (uffd, region) => {
        const [source, expected] = make();
        uffd.serve(region, source, { readahead });
        for (const [off, len] of [[0, 1], [PAGE * 9 + 100, 300], [PAGE * 31, PAGE], [PAGE * 2 - 10, 20], [0, 32 * PAGE]]) {
          assert.deepStrictEqual(await region.read(off, len), expected.subarray(off, off + len), `at ${off}`);
        }
      }));
    }
  }

  it('a file shorter than the region: the tail, partial last page included, reads as zeros', () => withServed(8 * PAGE, async (uffd, region) => {
    const short = path.join(dir, 'short.bin');
    fs.writeFileSync(short, data.subarray(0, 2 * PAGE + 100));
    uffd.serve(region, PageSource.file(short));
    const expected = Buffer.alloc(8 * PAGE);
    data.copy(expected, 0, 0, 2 * PAGE + 100);
    assert.deepStrictEqual(await region.read(0, 8 * PAGE), expected);
  }));

  it('a missing file fails at serve() time with ENOENT', () => withServed(4 * PAGE, async (uffd, region) => {
    assert.throws(() => uffd.serve(region, PageSource.file(path.join(dir, 'missing.bin'))), { code: 'ENOENT' });
    assert.throws(() => uffd.serve(region, PageSource.file(dir)), { code: 'EISDIR' });
  }));

  it('after dontneed, pages are filled again from the source', () => withServed(8 * PAGE, async (uffd, region) => {
    const b = pattern(8 * PAGE, 8);
    uffd.serve(region, PageSource.buffer(b));
    assert.deepStrictEqual(await region.read(0, 8 * PAGE), b);
    await region.write(PAGE, Buffer.alloc(2 * PAGE, 0x77));
    assert.deepStrictEqual(await region.read(PAGE, PAGE), Buffer.alloc(PAGE, 0x77));
    region.dontneed(0, 4 * PAGE);
    assert.deepStrictEqual(await region.read(0, 8 * PAGE), b);
  }));

  it('after close(), the pages the source filled keep its bytes and the others read as zeros', () => withServed(8 * PAGE, async (uffd, region) => {
    const b = pattern(8 * PAGE, 12);
    uffd.serve(region, PageSource.buffer(b), { readahead: false });
    assert.deepStrictEqual(await region.read(2 * PAGE, PAGE), b.subarray(2 * PAGE, 3 * PAGE));
    uffd.close();
    // Unregistered: a missing page is the kernel's fresh page, not the source's.
    const expected = Buffer.alloc(8 * PAGE);
    b.copy(expected, 2 * PAGE, 2 * PAGE, 3 * PAGE);
    assert.deepStrictEqual(await region.read(0, 8 * PAGE), expected);
  }));

  it('faults outside the served ranges reach the pagefault listener; stop() hands a range back', () => withServed(8 * PAGE, async (uffd, region) => {
    const seen = [];
    uffd.register(region);
    uffd.on('pagefault', (e) => {
      seen.push(Number(e.address - region.address) / PAGE);
      uffd.copy(e.address, pattern(PAGE, 99));
    });
    const served = uffd.serve({ start: region.address, length: 4 * PAGE }, PageSource.buffer(pattern(4 * PAGE, 2)), { readahead: 16 * PAGE });
    assert.deepStrictEqual(await region.read(0, 4 * PAGE), pattern(4 * PAGE, 2));
    assert.deepStrictEqual(await region.read(4 * PAGE, PAGE), pattern(PAGE, 99));
    assert.deepStrictEqual(seen, [4]);
    served.stop();
    region.dontneed(0, PAGE);
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 99));
    assert.deepStrictEqual(seen, [4, 0]);
  }));

  it("ranges served one by one while faults wait: a fault read before its range's serve() gets the source's bytes, not zeros", () => withServed(8 * PAGE, async (uffd, region) => {
    // As a VM's vCPUs fault from the handshake on while the handler serves its mappings in turn.
    const errors = [];
    uffd.on('error', (e) => errors.push(e));
    uffd.register(region);
    // Faults in the second range before any serve(): two threads on one page, two messages with
    // one address (as vCPUs on one huge page), and one on another page.
    const waiting = [region.read(5 * PAGE, PAGE), region.read(5 * PAGE + 64, 64), region.read(7 * PAGE, 8)];
    await delay(50);
    uffd.serve({ start: region.address, length: 4 * PAGE }, PageSource.buffer(pattern(4 * PAGE, 2))); // starts the reader
    // The reader reads the waiting fault while this thread has not served its range yet.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    uffd.serve({ start: region.address + BigInt(4 * PAGE), length: 4 * PAGE }, PageSource.buffer(pattern(4 * PAGE, 3)));
    const second = pattern(4 * PAGE, 3);
    assert.deepStrictEqual(await Promise.all(waiting), [second.subarray(PAGE, 2 * PAGE), second.subarray(PAGE + 64, PAGE + 128),
      second.subarray(3 * PAGE, 3 * PAGE + 8)]);
    assert.deepStrictEqual(await region.read(0, 4 * PAGE), pattern(4 * PAGE, 2));
    assert.deepStrictEqual(errors, []);
  }));

  it('stats() counts the served faults', () => withServed(8 * PAGE, async (uffd, region) => {
    const s0 = uffd.stats();
    for (const k of ['faults', 'copies', 'bytes', 'wakeups']) assert.strictEqual(typeof s0[k], 'number');
    assert.strictEqual(typeof s0.latencyNs.p50, 'number');
    assert.strictEqual(typeof s0.latencyNs.p99, 'number');
    uffd.serve(region, PageSource.buffer(pattern(8 * PAGE, 3)), { readahead: false });
    await region.read(0, 3 * PAGE);
    const s = uffd.stats();
    assert.strictEqual(s.faults - s0.faults, 3);
    assert.strictEqual(s.bytes - s0.bytes, 3 * PAGE);
  }));

  it('bad arguments throw before anything is registered', () => withServed(4 * PAGE, async (uffd, region) => {
    assert.throws(() => uffd.serve(region, {}), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => uffd.serve(region, PageSource.zero(), { readahead: 1000 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.file(''), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.file(-1), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.file(file, { mode: 'fast' }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.buffer('text'), { code: 'ERR_INVALID_ARG_TYPE' });
  }));
});
