// serve(): page sources answered without JavaScript per fault, read-ahead, stats().
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource } = require('../../dist');
const { describeBackends, pattern, delay, PAGE, perTestUffd, scaled } = require('../helpers');

/**
 * stats() once the reader has counted its last answer: the kernel backend's reader thread wakes
 * the faulting thread inside UFFDIO_COPY and counts after it returns, so the counters can trail
 * the read that the answer let go by a moment.
 */
async function settledStats(uffd, expectedBytes) {
  for (let i = 0; i < scaled(100) && uffd.stats().bytes < expectedBytes; i++) await delay(5);
  return uffd.stats();
}

describeBackends('serve: page sources and read-ahead', (backend) => {
  let uffd;
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-serve-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('PageSource.buffer: bytes as given, zeros past its end, no pagefault event', async () => {
    const r = map(4);
    uffd.on('pagefault', () => assert.fail('served faults raise no event'));
    const src = pattern(2 * PAGE + 100, 5);
    uffd.serve(r, PageSource.buffer(src));
    const bytes = await r.read(0, 4 * PAGE);
    assert.deepStrictEqual(bytes.subarray(0, src.length), src);
    assert.deepStrictEqual(bytes.subarray(src.length), Buffer.alloc(4 * PAGE - src.length));
  });

  it('PageSource.zero: zeros', async () => {
    const r = map(2);
    uffd.serve(r, PageSource.zero());
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
  });

  for (const mode of ['mmap', 'pread']) {
    it(`PageSource.file (${mode}) from an offset, by path and by fd`, async () => {
      const file = path.join(dir, `data-${mode}`);
      const content = pattern(5 * PAGE, 9);
      fs.writeFileSync(file, content);
      const r = map(4);
      uffd.serve(r, PageSource.file(file, { offset: PAGE, mode }));
      assert.deepStrictEqual(await r.read(0, 4 * PAGE), content.subarray(PAGE));
      const fd = fs.openSync(file, 'r');
      try {
        const r2 = map(2);
        uffd.serve(r2, PageSource.file(fd, { mode }));
        assert.deepStrictEqual(await r2.read(0, 2 * PAGE), content.subarray(0, 2 * PAGE));
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  it('PageSource.file(fd): the caller may close its fd once serve() returns', async () => {
    const file = path.join(dir, 'by-fd');
    fs.writeFileSync(file, pattern(2 * PAGE, 12));
    const r = map(2);
    const fd = fs.openSync(file, 'r');
    try {
      uffd.serve(r, PageSource.file(fd), { readahead: false });
    } finally {
      fs.closeSync(fd);
    }
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), pattern(2 * PAGE, 12));
  });

  it('a closed fd throws at serve(): EBADF', () => {
    const r = map(1);
    const fd = fs.openSync(__filename, 'r');
    fs.closeSync(fd);
    assert.throws(() => uffd.serve(r, PageSource.file(fd)), { name: 'UffdError', code: 'EBADF', errno: 9 });
  });

  it('a missing file throws at serve(): ENOENT from open', () => {
    const r = map(1);
    assert.throws(() => uffd.serve(r, PageSource.file(path.join(dir, 'nope'))), { name: 'UffdError', code: 'ENOENT', errno: 2, syscall: 'open' });
  });

  it('a directory throws at serve(): EISDIR', () => {
    const r = map(1);
    assert.throws(() => uffd.serve(r, PageSource.file(dir)), { code: 'EISDIR', errno: 21 });
  });

  it('read-ahead off: one fault and one copy per page', async () => {
    const r = map(8);
    uffd.serve(r, PageSource.buffer(pattern(8 * PAGE)), { readahead: false });
    await r.read(0, 8 * PAGE);
    const s = await settledStats(uffd, 8 * PAGE);
    assert.deepStrictEqual([s.faults, s.copies, s.bytes], [8, 8, 8 * PAGE]);
  });

  it('fixed read-ahead: one fault per window', async () => {
    const r = map(16);
    uffd.serve(r, PageSource.buffer(pattern(16 * PAGE)), { readahead: 4 * PAGE });
    assert.deepStrictEqual(await r.read(0, 16 * PAGE), pattern(16 * PAGE));
    const s = await settledStats(uffd, 16 * PAGE);
    assert.deepStrictEqual([s.faults, s.copies, s.bytes], [4, 4, 16 * PAGE]);
  });

  it('adaptive read-ahead doubles while the reads are sequential (1, 2, 4, 8 pages...)', async () => {
    const r = map(16);
    uffd.serve(r, PageSource.buffer(pattern(16 * PAGE)));
    await r.read(0, 16 * PAGE);
    const s = await settledStats(uffd, 16 * PAGE);
    assert.deepStrictEqual([s.faults, s.bytes], [5, 16 * PAGE]);
    assert.strictEqual(typeof s.latencyNs.p50, 'number');
    assert.ok(s.latencyNs.p99 >= s.latencyNs.p50);
  });

  it('present pages inside a window are skipped (EEXIST), the rest filled', async () => {
    const r = map(8);
    uffd.register(r);
    uffd.copy(r.address + BigInt(2 * PAGE), pattern(PAGE, 1));
    uffd.serve(r, PageSource.buffer(Buffer.alloc(8 * PAGE, 3)), { readahead: 4 * PAGE });
    const b = await r.read(0, 8 * PAGE);
    assert.deepStrictEqual([b[0], b[2 * PAGE], b[3 * PAGE], b[7 * PAGE]], [3, 1, 3, 3]);
    const s = await settledStats(uffd, 8 * PAGE);
    assert.deepStrictEqual([s.faults, s.copies, s.bytes], [2, 4, 8 * PAGE]);
  });

  it('stop(): later faults go to the pagefault handler', async () => {
    const r = map(2);
    const served = uffd.serve(r, PageSource.buffer(pattern(2 * PAGE, 1)), { readahead: false });
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 1));
    served.stop();
    uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 2)));
    assert.deepStrictEqual(await r.read(PAGE, PAGE), pattern(PAGE, 2));
  });

  it('stats() counts copy, zeropage and wake calls made from JavaScript', () => {
    const r = map(3);
    uffd.register(r);
    uffd.copy(r.address, pattern(PAGE));
    uffd.zeropage({ start: r.address + BigInt(PAGE), length: 2 * PAGE });
    uffd.wake(r);
    const s = uffd.stats();
    assert.deepStrictEqual([s.faults, s.copies, s.bytes, s.wakeups], [0, 2, 3 * PAGE, 1]);
    assert.deepStrictEqual(s.latencyNs, { p50: 0, p99: 0 });
  });
});
