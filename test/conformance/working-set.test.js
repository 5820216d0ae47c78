// Working sets (serve's record / prefetch, saveWorkingSet): behaviour both backends share.
// Memory is touched with region.read/write only.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource, readWorkingSet } = require('../../dist');
const { PAGE, pattern, describeBackends, delay, scaled } = require('../helpers');

const PAGES = 64;
/** A scattered first-touch order: [page, write]. */
const ORDER = [[10, false], [11, false], [12, false], [40, false], [5, true], [6, true], [30, false], [31, false], [63, false]];

describeBackends('working sets', (backend) => {
  let dir;
  let data;
  let file;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-ws-'));
    data = pattern(PAGES * PAGE, 15);
    file = path.join(dir, 'image.bin');
    fs.writeFileSync(file, data);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function run(options, body, source = () => PageSource.file(file)) {
    const uffd = Userfaultfd.open({ backend });
    const region = Region.map(PAGES * PAGE, { backend });
    try {
      const served = uffd.serve(region, source(), options);
      return await body(uffd, region, served);
    } finally {
      uffd.close();
      region.unmap();
    }
  }

  async function touch(region, order = ORDER) {
    for (const [p, write] of order) {
      if (write) await region.write(p * PAGE + 1, data.subarray(p * PAGE + 1, p * PAGE + 2));
      else await region.read(p * PAGE, 1);
    }
  }

  /** Waits (polling, no time asserted) until prefetch has installed `pages` pages. */
  async function prefetched(uffd, pages) {
    for (let i = 0; i < scaled(2000) && uffd.stats().prefetched < pages; i++) await delay(5);
    return uffd.stats().prefetched;
  }

  const setFile = (name) => path.join(dir, `${name}.uffdws`);

  it('record: first touches, in order, merged into runs, with read or write', async () => {
    const set = setFile('record');
    await run({ record: set }, (uffd, region) => touch(region));
    const f = readWorkingSet(set);
    assert.deepStrictEqual(f.runs.map((r) => [r.first, r.count, r.write]),
      [[10, 3, false], [40, 1, false], [5, 2, true], [30, 2, false], [63, 1, false]]);
    assert.strictEqual(f.pageSize, PAGE);
    assert.strictEqual(f.sourceSize, PAGES * PAGE);
    assert.strictEqual(f.rangeLength, PAGES * PAGE);
    assert.strictEqual(f.generation, 1);
  });

  it('record: a page touched again is recorded once; read-ahead-filled pages are not recorded', async () => {
    const set = setFile('readahead');
    await run({ record: set, readahead: 8 * PAGE }, async (uffd, region) => {
      await region.read(0, 1); // fills pages 0..7
      await region.read(3 * PAGE, 1); // no fault
      await region.read(0, 1);
    });
    assert.deepStrictEqual(readWorkingSet(set).runs.map((r) => [r.first, r.count]), [[0, 1]]);
  });

  it('round trip: record, then prefetch; the set arrives without demand faults and the bytes equal the source', async () => {
    const set = setFile('roundtrip');
    await run({ record: set }, (uffd, region) => touch(region));
    await run({ prefetch: set }, async (uffd, region) => {
      assert.strictEqual(await prefetched(uffd, 9), 9);
      const before = uffd.stats().demandFaults;
      for (const [p] of ORDER) assert.deepStrictEqual(await region.read(p * PAGE, PAGE), data.subarray(p * PAGE, (p + 1) * PAGE));
      assert.strictEqual(uffd.stats().demandFaults, before, 'no demand fault on a prefetched page');
      assert.deepStrictEqual(await region.read(0, PAGES * PAGE), data);
      const s = uffd.stats();
      assert.strictEqual(s.prefetched, 9);
      assert.strictEqual(s.prefetchMisses, 0);
      assert.strictEqual(s.demandFaults, s.faults);
    });
  });

  it('prefetch from a buffer source and a zero source', async () => {
    const buf = pattern(PAGES * PAGE, 3);
    const set = setFile('buffer');
    await run({ record: set }, (uffd, region) => touch(region), () => PageSource.buffer(buf));
    await run({ prefetch: set }, async (uffd, region) => {
      await prefetched(uffd, 9);
      assert.deepStrictEqual(await region.read(0, PAGES * PAGE), buf);
    }, () => PageSource.buffer(buf));
    const zset = setFile('zero');
    await run({ record: zset }, (uffd, region) => touch(region, [[1, false], [2, false]]), () => PageSource.zero());
    await run({ prefetch: zset }, async (uffd, region) => {
      assert.strictEqual(await prefetched(uffd, 2), 2);
      assert.deepStrictEqual(await region.read(0, 4 * PAGE), Buffer.alloc(4 * PAGE));
    }, () => PageSource.zero());
  });

  it('a source shorter than the range: the prefetched last page is zero-padded, pages past it are zeros', async () => {
    const short = path.join(dir, 'short.bin');
    fs.writeFileSync(short, data.subarray(0, 10 * PAGE + 100));
    const set = setFile('short');
    const order = [[10, false], [20, false], [9, false]];
    await run({ record: set }, (uffd, region) => touch(region, order), () => PageSource.file(short));
    await run({ prefetch: set }, async (uffd, region) => {
      assert.strictEqual(await prefetched(uffd, 3), 3);
      const expected = Buffer.alloc(PAGES * PAGE);
      data.copy(expected, 0, 0, 10 * PAGE + 100);
      assert.deepStrictEqual(await region.read(0, PAGES * PAGE), expected);
    }, () => PageSource.file(short));
  });

  it('record and prefetch together refine the set: new pages are added, the generation grows', async () => {
    const set = setFile('refine');
    await run({ record: set, prefetch: set }, (uffd, region) => touch(region)); // no file yet: records only
    assert.strictEqual(readWorkingSet(set).generation, 1);
    await run({ record: set, prefetch: set }, async (uffd, region) => {
      await prefetched(uffd, 9);
      await region.read(50 * PAGE, 1); // outside the set: a demand fault, recorded
      assert.strictEqual(uffd.stats().demandFaults, 1);
    });
    const f = readWorkingSet(set);
    assert.strictEqual(f.generation, 2);
    const pages = f.runs.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.first + i));
    assert.deepStrictEqual(pages, [10, 11, 12, 40, 5, 6, 30, 31, 63, 50]);
  });

  it('refine: maxMiB caps the set, keeping the first pages in order', async () => {
    const set = setFile('cap');
    await run({ record: set }, (uffd, region) => touch(region));
    await run({ record: set, prefetch: set, workingSet: { maxMiB: (4 * PAGE) / (1024 * 1024) } }, (uffd) => prefetched(uffd, 9));
    const f = readWorkingSet(set);
    assert.deepStrictEqual(f.runs.map((r) => [r.first, r.count]), [[10, 3], [40, 1]]);
  });

  it('saveWorkingSet writes the set so far; the file is also written at unregister and at stop()', async () => {
    const a = setFile('save-a');
    const b = setFile('save-b');
    await run({ record: b }, async (uffd, region, served) => {
      await region.read(7 * PAGE, 1);
      uffd.saveWorkingSet(region, a);
      assert.deepStrictEqual(readWorkingSet(a).runs.map((r) => [r.first, r.count]), [[7, 1]]);
      await region.read(8 * PAGE, 1);
      served.stop();
      assert.deepStrictEqual(readWorkingSet(b).runs.map((r) => [r.first, r.count]), [[7, 2]]);
    });
    const c = setFile('save-c');
    await run({ record: c }, async (uffd, region) => {
      await region.read(2 * PAGE, 1);
      uffd.unregister(region);
      assert.deepStrictEqual(readWorkingSet(c).runs.map((r) => [r.first, r.count]), [[2, 1]]);
    });
  });

  it('saveWorkingSet: a range not recording, or a bad path, is a coded error', () => run({}, (uffd, region) => {
    assert.throws(() => uffd.saveWorkingSet(region, setFile('none')), { code: 'ERR_UFFD_NOT_RECORDING' });
    assert.throws(() => uffd.saveWorkingSet(region, 5), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.strictEqual(fs.existsSync(setFile('none')), false);
  }));

  it('bad record / prefetch / workingSet options throw before anything is registered', () => {
    const uffd = Userfaultfd.open({ backend });
    const region = Region.map(PAGES * PAGE, { backend });
    try {
      assert.throws(() => uffd.serve(region, PageSource.zero(), { record: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => uffd.serve(region, PageSource.zero(), { prefetch: '' }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => uffd.serve(region, PageSource.zero(), { workingSet: { maxMiB: -1 } }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => uffd.serve(region, PageSource.zero(), { workingSet: { maxAge: 0 } }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => uffd.serve(region, PageSource.zero(), { prefetch: setFile('missing') }), { code: 'ENOENT' });
      uffd.serve(region, PageSource.zero()); // nothing was left registered or served
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  /** The next 'error' event of `uffd` (a deadline, not a timed assertion: it must come). */
  function nextError(uffd) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no error event')), scaled(10000));
      uffd.once('error', (err) => {
        clearTimeout(timer);
        resolve(err);
      });
    });
  }

  /** Every page of the region, read from the thread pool, equals the source. */
  async function assertAllBytes(region) {
    for (let p = 0; p < PAGES; p++) assert.deepStrictEqual(await region.read(p * PAGE, PAGE), data.subarray(p * PAGE, (p + 1) * PAGE), `page ${p}`);
  }

  describe('a damaged or foreign set: an \'error\' event in background mode (served lazily), a throw in eager mode; never wrong data', () => {
    let good;
    before(async () => {
      const set = setFile('good');
      await run({ record: set }, (uffd, region) => touch(region));
      good = fs.readFileSync(set);
    });
    const cases = {
      'a flipped byte in a run': [(b) => { b[40 + 1] ^= 0x40; return b; }, 'ERR_UFFD_WORKING_SET_CORRUPT', /checksum mismatch/],
      'a flipped checksum': [(b) => { b[b.length - 1] ^= 1; return b; }, 'ERR_UFFD_WORKING_SET_CORRUPT', /checksum mismatch/],
      'truncated': [(b) => b.subarray(0, b.length - 5), 'ERR_UFFD_WORKING_SET_CORRUPT', /truncated/],
      'empty': [() => Buffer.alloc(0), 'ERR_UFFD_WORKING_SET_CORRUPT', /0 bytes, truncated/],
      'not a set': [() => Buffer.from('hello world, this is not a working set at all'), 'ERR_UFFD_WORKING_SET_CORRUPT', /not a working-set file/],
      'a newer version': [(b) => { b[4] = 9; return b; }, 'ERR_UFFD_WORKING_SET_VERSION', /version 9/],
    };
    for (const [name, [damage, code, message]] of Object.entries(cases)) {
      it(`${name}: background`, async () => {
        const set = setFile(`damaged-${name.replace(/\W/g, '')}`);
        fs.writeFileSync(set, damage(Buffer.from(good)));
        await run({ prefetch: set }, async (uffd, region) => {
          const error = nextError(uffd);
          // Faults raised at once, while the set loads or after it failed: the source answers.
          const first = region.read(10 * PAGE, PAGE);
          const err = await error;
          assert.strictEqual(err.code, code);
          assert.match(err.message, message);
          assert.strictEqual(err.path, set);
          assert.deepStrictEqual(await first, data.subarray(10 * PAGE, 11 * PAGE));
          await assertAllBytes(region);
          assert.strictEqual(uffd.stats().prefetched, 0);
        });
      });
      it(`${name}: eager`, async () => {
        const set = setFile(`damaged-eager-${name.replace(/\W/g, '')}`);
        fs.writeFileSync(set, damage(Buffer.from(good)));
        const uffd = Userfaultfd.open({ backend });
        const region = Region.map(PAGES * PAGE, { backend });
        try {
          assert.throws(() => uffd.serve(region, PageSource.file(file), { prefetch: set, prefetchMode: 'eager' }), { code, message });
          // The range was left as it was: served plainly now, it reads the source.
          uffd.serve(region, PageSource.file(file));
          assert.deepStrictEqual(await region.read(10 * PAGE, PAGE), data.subarray(10 * PAGE, 11 * PAGE));
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }

    it('a set recorded for another source size is ERR_UFFD_WORKING_SET_MISMATCH, naming the sizes', async () => {
      const set = setFile('good2');
      fs.writeFileSync(set, good);
      const other = path.join(dir, 'other.bin');
      fs.writeFileSync(other, data.subarray(0, 32 * PAGE));
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(PAGES * PAGE, { backend });
      const small = Region.map(32 * PAGE, { backend });
      try {
        assert.throws(() => uffd.serve(region, PageSource.file(other), { prefetch: set, prefetchMode: 'eager' }),
          { code: 'ERR_UFFD_WORKING_SET_MISMATCH', message: new RegExp(`source size ${PAGES * PAGE}, here ${32 * PAGE}`) });
        let error = nextError(uffd);
        uffd.serve(small, PageSource.file(file), { prefetch: set });
        const first = small.read(3 * PAGE, PAGE);
        const err = await error;
        assert.strictEqual(err.code, 'ERR_UFFD_WORKING_SET_MISMATCH');
        assert.match(err.message, new RegExp(`range length ${PAGES * PAGE}, here ${32 * PAGE}`));
        assert.deepStrictEqual(await first, data.subarray(3 * PAGE, 4 * PAGE));
        error = nextError(uffd);
        uffd.serve(region, PageSource.file(other), { prefetch: set });
        assert.match((await error).message, new RegExp(`source size ${PAGES * PAGE}, here ${32 * PAGE}`));
      } finally {
        uffd.close();
        region.unmap();
        small.unmap();
      }
    });
  });

  it('background: serve() returns before the set is loaded; a fault raised at once is answered from the source, then the set prefetches the rest', async () => {
    const set = setFile('at-once');
    await run({ record: set }, (uffd, region) => touch(region));
    await run({ prefetch: set }, async (uffd, region) => {
      // Raised from the thread pool right after serve() returned, while the set is being read:
      // the set's first page (a fault further on would let prefetch skip what lies before it).
      const first = region.read(10 * PAGE, PAGE);
      assert.deepStrictEqual(await first, data.subarray(10 * PAGE, 11 * PAGE));
      const setPages = ORDER.length;
      assert.ok(await prefetched(uffd, setPages - 1) >= setPages - 1, 'the set is prefetched once loaded');
      await assertAllBytes(region);
      const s = uffd.stats();
      // Each page of the set counted once; the first one, answered before the set was in, as a
      // plain demand fault then.
      assert.ok([setPages - 1, setPages].includes(s.prefetched + s.prefetchMisses), `${s.prefetched} + ${s.prefetchMisses}`);
    });
  });

  it('a missing set is ENOENT from serve() in both modes (not an error event)', () => {
    for (const prefetchMode of ['background', 'eager']) {
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(PAGES * PAGE, { backend });
      try {
        assert.throws(() => uffd.serve(region, PageSource.file(file), { prefetch: setFile('nowhere'), prefetchMode }), { code: 'ENOENT' });
      } finally {
        uffd.close();
        region.unmap();
      }
    }
  });
});
