// The working-set file format and the refinement across runs (lib/sources/working-set.ts): pure
// functions: the one format and policy both backends use, so not run per backend.
const assert = require('assert');
const { encodeWorkingSet, decodeWorkingSet, refine } = require('../../dist/sources/working-set');

const PAGE = 4096;
const shape = { pageSize: PAGE, sourceSize: 100 * PAGE, rangeLength: 100 * PAGE };
const run = (first, count, age = 0, write = false) => ({ first, count, write, age });
const pagesOf = (runs) => runs.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.first + i));

describe('working-set file format', () => {
  it('round trip: encode then decode gives the same runs, ages and write flags', () => {
    const runs = [run(10, 3, 0, true), run(90, 10, 2), run(0, 1, 255)];
    const f = decodeWorkingSet(encodeWorkingSet({ ...shape, generation: 7, runs }), shape);
    assert.deepStrictEqual(f, { version: 1, ...shape, generation: 7, runs });
  });

  it('is small: 40 bytes of header, 12 per run, 4 of checksum', () => {
    assert.strictEqual(encodeWorkingSet({ ...shape, generation: 1, runs: [run(0, 100)] }).length, 56);
  });

  it('the checksum is the first 4 bytes of SHA-256 over the bytes before it', () => {
    const b = encodeWorkingSet({ ...shape, generation: 1, runs: [run(3, 1)] });
    const digest = require('crypto').createHash('sha256').update(b.subarray(0, b.length - 4)).digest();
    assert.strictEqual(b.readUInt32LE(b.length - 4), digest.readUInt32BE(0));
  });

  it('every damaged byte is caught: each single-bit flip of a file is a coded error', () => {
    const good = encodeWorkingSet({ ...shape, generation: 1, runs: [run(10, 3), run(50, 2, 1, true)] });
    for (let i = 0; i < good.length; i++) {
      const b = Buffer.from(good);
      b[i] ^= 1 << (i % 8);
      assert.throws(() => decodeWorkingSet(b, shape), (e) => /^ERR_UFFD_WORKING_SET_/.test(e.code), `byte ${i}`);
    }
  });

  it('runs that overlap or leave the range are corrupt, even with a valid checksum', () => {
    for (const runs of [[run(10, 3), run(12, 1)], [run(99, 2)], [run(0, 0)]]) {
      assert.throws(() => decodeWorkingSet(encodeWorkingSet({ ...shape, generation: 1, runs }), shape),
        { code: 'ERR_UFFD_WORKING_SET_CORRUPT' });
    }
  });

  it('another page size is a mismatch', () => {
    const b = encodeWorkingSet({ ...shape, pageSize: 2 * PAGE, rangeLength: 100 * PAGE, generation: 1, runs: [] });
    assert.throws(() => decodeWorkingSet(b, shape), { code: 'ERR_UFFD_WORKING_SET_MISMATCH', message: /page size 8192, here 4096/ });
  });
});

describe('working-set refinement across runs', () => {
  const o = { maxPages: Infinity, maxAge: 3 };
  const triples = (...rs) => Uint32Array.from(rs.flat());

  it('without a loaded set, the recording is the set, in order', () => {
    assert.deepStrictEqual(refine(null, 0, triples([5, 2, 0], [1, 1, 1]), 100, o), [run(5, 2), run(1, 1, 0, true)]);
  });

  it('pages prefetch never reached and that never faulted age; at maxAge they are dropped', () => {
    // Set of pages 10..13; the prefetcher went past the first 2 (10, 11), then stopped.
    let runs = [run(10, 4)];
    runs = refine(runs, 2, triples(), 100, o);
    assert.deepStrictEqual(runs, [run(10, 2, 0), run(12, 2, 1)]);
    runs = refine(runs, 2, triples(), 100, o);
    runs = refine(runs, 2, triples(), 100, o);
    assert.deepStrictEqual(runs, [run(10, 2, 0)], 'untouched for 3 runs: dropped');
  });

  it('a page that faulted is young again; prefetched pages keep their age (a prefetched page never faults)', () => {
    const runs = refine([run(10, 2, 2), run(20, 1, 1)], 3, triples([11, 1, 1]), 100, o);
    assert.deepStrictEqual(runs, [run(10, 1, 2), run(11, 1, 0, true), run(20, 1, 1)]);
  });

  it('new pages follow the loaded ones; maxPages keeps the first in order', () => {
    const runs = refine([run(10, 2)], 2, triples([50, 3, 0]), 100, { maxPages: 4, maxAge: 3 });
    assert.deepStrictEqual(pagesOf(runs), [10, 11, 50, 51]);
  });
});
