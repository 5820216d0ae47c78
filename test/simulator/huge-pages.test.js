// The simulator's hugetlb Regions served in whole huge pages of the kernel's default size (HUGE:
// 2 MiB, 32 MiB over 16 KiB pages), as test/native/firecracker.test.js checks on the kernel.
const assert = require('assert');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { pattern, HUGE } = require('../helpers');

describe('serve() of huge pages on the simulator', function () {
  it('answers a hugetlb Region in whole huge pages, zeros past the source, as the kernel backend does', async function () {
    const uffd = Userfaultfd.open({ backend: 'simulator' });
    const region = Region.map(3 * HUGE, { hugetlb: true, backend: 'simulator' });
    const src = pattern(HUGE + HUGE / 2, 6);
    try {
      uffd.serve(region, PageSource.buffer(src), { readahead: false });
      assert.ok((await region.read(HUGE + 8, 64)).equals(src.subarray(HUGE + 8, HUGE + 72)));
      // The source ends half-way through the 2nd huge page: the rest of it, and the 3rd, read as zeros.
      assert.ok((await region.read(HUGE + HUGE / 2, 64)).equals(Buffer.alloc(64)));
      assert.ok((await region.read(2 * HUGE + 5, 64)).equals(Buffer.alloc(64)));
      assert.ok((await region.read(0, 64)).equals(src.subarray(0, 64)));
      assert.deepStrictEqual({ faults: uffd.stats().faults, bytes: uffd.stats().bytes }, { faults: 3, bytes: 3 * HUGE });
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  it('refuses a working set on huge pages with ERR_UFFD_UNSUPPORTED (sets are kept in base pages)', function () {
    const uffd = Userfaultfd.open({ backend: 'simulator' });
    const region = Region.map(HUGE, { hugetlb: true, backend: 'simulator' });
    try {
      assert.throws(() => uffd.serve(region, PageSource.zero(), { record: path.join(os.tmpdir(), 'never-written') }), { code: 'ERR_UFFD_UNSUPPORTED' });
    } finally {
      uffd.close();
      region.unmap();
    }
  });
});
