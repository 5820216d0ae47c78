// serve({ removed }): pages dropped after UFFD_EVENT_REMOVE read back as zeros ('zero') or from
// the source again ('source', the default), on both backends, through region.read and through
// a direct read of region.buffer (served memory may be touched from the JS thread).
const assert = require('assert');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { describeBackends, requireFeature, pattern, PAGE } = require('../helpers');

describeBackends('serve({ removed }) after UFFD_EVENT_REMOVE', (backend) => {
  beforeEach(function () { requireFeature(this, backend, 'EVENT_REMOVE'); });

  async function withServed(pages, seed, options, fn) {
    const uffd = Userfaultfd.open({ backend, features: ['EVENT_REMOVE'] });
    const region = Region.map(pages * PAGE, { backend });
    try {
      const src = pattern(pages * PAGE, seed);
      uffd.serve(region, PageSource.buffer(src), options);
      await fn(uffd, region, src);
    } finally {
      uffd.close();
      region.unmap();
    }
  }

  for (const removed of ['zero', 'source']) {
    const reads = removed === 'zero' ? 'zeros' : "the source's bytes";
    it(`removed: '${removed}': a dropped page reads back as ${reads} through region.read`, () => withServed(16, 11, { removed }, async (uffd, region, src) => {
      const removes = [];
      uffd.on('remove', (e) => removes.push(e));
      assert.deepStrictEqual(await region.read(0, 16 * PAGE), src);
      region.dontneed(4 * PAGE, 4 * PAGE); // on the kernel: blocks until the reader has read REMOVE
      const expected = Buffer.from(src);
      if (removed === 'zero') expected.fill(0, 4 * PAGE, 8 * PAGE);
      assert.deepStrictEqual(await region.read(0, 16 * PAGE), expected);
      region.dontneed(0, 16 * PAGE);
      const again = await region.read(0, 16 * PAGE);
      assert.deepStrictEqual(again, removed === 'zero' ? Buffer.alloc(16 * PAGE) : src);
      await new Promise((r) => setImmediate(r));
      assert.ok(removes.length >= 1);
      assert.strictEqual(removes[0].start, region.address + BigInt(4 * PAGE));
      assert.strictEqual(removes[0].end, region.address + BigInt(8 * PAGE));
    }));

    it(`removed: '${removed}': a direct read of region.buffer sees ${reads} after dontneed`, () => withServed(8, 13, { removed }, async (uffd, region, src) => {
      const view = new Uint8Array(region.buffer);
      assert.strictEqual(view[2 * PAGE + 5], src[2 * PAGE + 5]); // served: answered without JS
      region.dontneed(2 * PAGE, PAGE);
      const expected = removed === 'zero' ? 0 : src[2 * PAGE + 5];
      assert.strictEqual(view[2 * PAGE + 5], expected);
      assert.strictEqual(view[3 * PAGE + 1], src[3 * PAGE + 1]);
    }));
  }

  it("removed: 'zero' stops read-ahead at a removed span", () => withServed(16, 12, { removed: 'zero', readahead: 16 * PAGE }, async (uffd, region, src) => {
    assert.deepStrictEqual(await region.read(8 * PAGE, PAGE), src.subarray(8 * PAGE, 9 * PAGE));
    region.dontneed(8 * PAGE, PAGE); // read-ahead filled 8..15; page 8 removed, 0..7 never touched
    // A fault at page 0 reads ahead (16 pages) up to page 8, not into it.
    const expected = Buffer.from(src.subarray(0, 9 * PAGE));
    expected.fill(0, 8 * PAGE, 9 * PAGE);
    assert.deepStrictEqual(await region.read(0, 9 * PAGE), expected);
  }));

  it('without EVENT_REMOVE there is no removed span: a dropped page comes from the source again', async () => {
    const uffd = Userfaultfd.open({ backend });
    const region = Region.map(4 * PAGE, { backend });
    try {
      const src = pattern(4 * PAGE, 14);
      uffd.serve(region, PageSource.buffer(src), { removed: 'zero' });
      assert.deepStrictEqual(await region.read(0, 4 * PAGE), src);
      region.dontneed(0, 4 * PAGE);
      assert.deepStrictEqual(await region.read(0, 4 * PAGE), src);
    } finally {
      uffd.close();
      region.unmap();
    }
  });
});
