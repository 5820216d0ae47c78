// Issue 16, the simulator's limits: what it can see of writes, and the snapshot it refuses.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { UffdError } = require('../../dist');
const { PAGE, perTestUffd } = require('../helpers');

const backend = 'simulator';

describe('dirty tracking and snapshots on the simulator', () => {
  const map = perTestUffd(backend);

  it('tracks region.write(), not stores through region.buffer (a plain ArrayBuffer here)', async () => {
    const uffd = map.open({ features: ['WP_ASYNC', 'WP_UNPOPULATED'] });
    const region = map(8);
    uffd.register(region, { wp: true });
    uffd.writeProtect(region, { protect: true });
    new Uint8Array(region.buffer)[3 * PAGE] = 1; // unseen: no page table is involved
    await region.write(5 * PAGE, Buffer.from([1]));
    assert.deepStrictEqual(uffd.dirtyPages(region), [{ start: region.address + BigInt(5 * PAGE), length: PAGE }]);
  });

  it('refuses to snapshot a page still missing in a MISSING range (EOPNOTSUPP), and leaves the range as it was', async () => {
    const uffd = map.open();
    const region = map(4);
    uffd.register(region);
    const file = path.join(os.tmpdir(), `uffd-sim-snap-${process.pid}`);
    try {
      await assert.rejects(uffd.snapshot(region, file), (e) => e instanceof UffdError && e.code === 'EOPNOTSUPP');
    } finally {
      fs.rmSync(file, { force: true });
    }
    assert.throws(() => uffd.writeProtect(region, { protect: true }), { code: 'ENOENT' });
    assert.strictEqual(uffd.zeropage(region), 4 * PAGE, 'still registered for MISSING, pages still missing');
  });
});
