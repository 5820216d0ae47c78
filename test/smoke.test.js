const assert = require('assert');
const { Userfaultfd, Region } = require('../dist');
const { describeBackends, pattern, PAGE } = require('./helpers');

describeBackends('smoke: a JS handler answers a thread-pool read', (backend) => {
  it('copies a pattern into the faulting page', async () => {
    const uffd = Userfaultfd.open({ backend });
    const region = Region.map(4 * PAGE, { backend });
    try {
      uffd.register(region);
      const seen = [];
      uffd.on('pagefault', (e) => {
        seen.push(e);
        uffd.copy(e.address, pattern(PAGE, 9));
      });
      const bytes = await region.read(PAGE, PAGE);
      assert.deepStrictEqual(bytes, pattern(PAGE, 9));
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(seen[0].address, region.address + BigInt(PAGE));
      assert.strictEqual(seen[0].write, false);
    } finally {
      uffd.close();
      region.unmap();
    }
  });
});
