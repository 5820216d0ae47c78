// PageSource.sparse (runs of a source placed in the range, zeros between) and uffd.fill() (the
// background fill of what the served ranges lack, as a lazy-restore daemon pushes the rest),
// on both backends. What only the kernel shows (mremap, fork, CRIU itself) is in
// test/native/criu.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource } = require('../../dist');
const { PAGE, pattern, describeBackends, perTestUffd } = require('../helpers');

/** What a range of `pages` pages serving `runs` of `data` reads as. */
function expected(data, runs, pages) {
  const b = Buffer.alloc(pages * PAGE);
  for (const r of runs) data.copy(b, r.offset, r.sourceOffset, r.sourceOffset + r.length);
  return b;
}

describeBackends('serve: PageSource.sparse and fill()', (backend) => {
  let dir;
  let file;
  let data;
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-sparse-'));
    file = path.join(dir, 'pages.img');
    data = pattern(16 * PAGE, 41);
    fs.writeFileSync(file, data);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  // Two runs out of file order, a hole before, between and after them.
  const RUNS = [{ offset: 2 * PAGE, length: 3 * PAGE, sourceOffset: 8 * PAGE }, { offset: 9 * PAGE, length: 2 * PAGE, sourceOffset: PAGE }];

  for (const [name, base] of [['a file', () => PageSource.file(file)], ['a buffer', () => PageSource.buffer(data)],
    ['a custom source', () => PageSource.custom((o, n) => data.subarray(o, o + n), { size: data.length, chunkSize: 4 * PAGE })]]) {
    it(`over ${name}: each run's bytes from its source offset, zeros elsewhere`, async () => {
      const r = map(12);
      uffd.serve(r, PageSource.sparse(base(), RUNS));
      assert.deepStrictEqual(await r.read(0, 12 * PAGE), expected(data, RUNS, 12));
    });
  }

  it('ready() gives the span of the runs; a sparse source over another one is refused', async () => {
    assert.deepStrictEqual(await PageSource.sparse(PageSource.file(file), RUNS).ready(), { size: 11 * PAGE });
    assert.throws(() => PageSource.sparse(PageSource.sparse(PageSource.file(file), RUNS), RUNS), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('runs must be page multiples, sorted, disjoint, and safe integers', () => {
    const src = PageSource.file(file);
    assert.throws(() => PageSource.sparse(src, 'runs'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.sparse(src, [null]), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.sparse(src, [{ offset: 1, length: PAGE, sourceOffset: 0 }]), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.sparse(src, [{ offset: 0, length: 0, sourceOffset: 0 }]), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.sparse(src, [{ offset: 0, length: PAGE, sourceOffset: -1 }]), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.sparse(src, [...RUNS].reverse()), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.sparse(src, [{ offset: 0, length: 2 * PAGE, sourceOffset: 0 }, { offset: PAGE, length: PAGE, sourceOffset: 0 }]),
      { code: 'ERR_OUT_OF_RANGE' });
  });

  it('fill() installs every run page not in yet, and no hole: a hole still faults after it', async () => {
    const r = map(12);
    uffd.serve(r, PageSource.sparse(PageSource.file(file), RUNS), { readahead: false, follow: true });
    assert.deepStrictEqual(await r.read(3 * PAGE, PAGE), data.subarray(9 * PAGE, 10 * PAGE));
    assert.deepStrictEqual(await uffd.fill(), { pages: 4, ownerGone: false });
    const faults = uffd.stats().faults;
    assert.deepStrictEqual(await r.read(2 * PAGE, 3 * PAGE), data.subarray(8 * PAGE, 11 * PAGE));
    assert.deepStrictEqual(await r.read(9 * PAGE, 2 * PAGE), data.subarray(PAGE, 3 * PAGE));
    assert.strictEqual(uffd.stats().faults, faults, 'the run pages were in: no fault');
    assert.deepStrictEqual(await r.read(0, PAGE), Buffer.alloc(PAGE));
    assert.strictEqual(uffd.stats().faults, faults + 1, 'a hole is left to its fault');
    assert.strictEqual(uffd.stats().filled, 4);
  });

  it('fill() with removed: \'zero\': a page the program dropped is never filled again', async () => {
    uffd = map.open({ features: ['EVENT_REMOVE'] });
    const r = map(8);
    uffd.serve(r, PageSource.file(file), { readahead: false, removed: 'zero', follow: true });
    assert.deepStrictEqual(await r.read(PAGE, PAGE), data.subarray(PAGE, 2 * PAGE));
    r.dontneed(PAGE, 2 * PAGE); // one page filled, one never
    await uffd.fill();
    const want = Buffer.from(data.subarray(0, 8 * PAGE));
    want.fill(0, PAGE, 3 * PAGE);
    assert.deepStrictEqual(await r.read(0, 8 * PAGE), want);
  });

  it('fill() with nothing served resolves at once; a second call while it runs returns the same promise', async () => {
    assert.deepStrictEqual(await uffd.fill(), { pages: 0, ownerGone: false });
    const r = map(4);
    uffd.serve(r, PageSource.file(file));
    const a = uffd.fill();
    assert.strictEqual(uffd.fill(), a);
    assert.deepStrictEqual(await a, { pages: 4, ownerGone: false });
    assert.deepStrictEqual(await r.read(0, 4 * PAGE), data.subarray(0, 4 * PAGE));
  });

  it('fill() checks its chunk sizes, and rejects once the uffd is closed', async () => {
    await assert.rejects(uffd.fill({ minChunk: PAGE + 1 }), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(uffd.fill({ minChunk: 4 * PAGE, maxChunk: PAGE }), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(uffd.fill({ minChunk: 'big' }), { code: 'ERR_INVALID_ARG_TYPE' });
    const u = map.open();
    u.close();
    await assert.rejects(u.fill(), { code: 'ERR_UFFD_CLOSED' });
  });

  it('follow is refused for a custom source (answered in JavaScript, after the layout events)', () => {
    const r = map(4);
    const src = PageSource.custom(() => Buffer.alloc(4 * PAGE), { size: 4 * PAGE });
    assert.throws(() => uffd.serve(r, src, { follow: true }), { code: 'ERR_UFFD_UNSUPPORTED' });
  });
});
