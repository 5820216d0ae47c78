// Features whose effect both backends must show the same way: SIGBUS (every userfault becomes
// a SIGBUS, as in the kernel's sigbus and sigbus-wp selftests), WP_UNPOPULATED, and pages
// written through region.buffer before registration.
const assert = require('assert');
const { PageSource } = require('../../dist');
const { describeBackends, requireFeature, pattern, pages, PAGE, perTestUffd } = require('../helpers');

describeBackends('features', (backend) => {
  const map = perTestUffd(backend);
  const rejectsWithSigbus = (promise) => assert.rejects(promise, (e) => e.code === 'SIGBUS');

  describe('SIGBUS: a userfault raises SIGBUS instead of a message', () => {
    beforeEach(function () { requireFeature(this, backend, 'SIGBUS'); });

    it('a missing-page read and write reject with SIGBUS; no pagefault event', async () => {
      const u = map.open({ features: ['SIGBUS'] });
      const r = map(4);
      u.register(r);
      const faults = [];
      u.on('pagefault', (e) => faults.push(e));
      await rejectsWithSigbus(r.read(PAGE, 16));
      await rejectsWithSigbus(r.write(2 * PAGE, Buffer.alloc(8, 1)));
      assert.deepStrictEqual(faults, []);
    });

    it('a page copied in reads normally; the next missing page still raises SIGBUS', async () => {
      const u = map.open({ features: ['SIGBUS'] });
      const r = map(4);
      u.register(r);
      const data = pattern(PAGE, 3);
      assert.strictEqual(u.copy(r.address, data), PAGE);
      assert.deepStrictEqual(await r.read(0, PAGE), data);
      await rejectsWithSigbus(r.read(PAGE, 1));
    });

    it('a write to a write-protected page raises SIGBUS (sigbus-wp)', async function () {
      requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
      const u = map.open({ features: ['SIGBUS', 'PAGEFAULT_FLAG_WP'] });
      const r = map(2);
      u.register(r, { missing: true, wp: true });
      u.copy(r.address, pattern(2 * PAGE, 4));
      u.writeProtect(r, { protect: true });
      assert.deepStrictEqual(await r.read(0, 8), pattern(2 * PAGE, 4).subarray(0, 8)); // reads are fine
      await rejectsWithSigbus(r.write(PAGE, Buffer.from([1])));
      u.writeProtect(r, { protect: false });
      await r.write(PAGE, Buffer.from([7]));
      assert.strictEqual((await r.read(PAGE, 1))[0], 7);
    });

    it('serve() on a SIGBUS uffd is refused with ERR_UFFD_SERVE_SIGBUS, nothing registered', async () => {
      const u = map.open({ features: ['SIGBUS'] });
      const r = map(2);
      assert.throws(() => u.serve(r, PageSource.zero()), (e) => e.code === 'ERR_UFFD_SERVE_SIGBUS');
      await r.write(0, Buffer.from([5])); // not registered: an ordinary page
      assert.strictEqual((await r.read(0, 1))[0], 5);
    });
  });

  describe('WP_UNPOPULATED', () => {
    beforeEach(function () { requireFeature(this, backend, 'WP_UNPOPULATED'); });

    it('a write to a never-touched page of a protected WP range is a write-protect fault', async () => {
      const u = map.open({ features: ['WP_UNPOPULATED', 'PAGEFAULT_FLAG_WP'] });
      const r = map(4);
      u.register(r, { wp: true });
      u.writeProtect(r, { protect: true });
      const faults = [];
      u.on('pagefault', (e) => {
        faults.push(e);
        u.writeProtect(pages(r, Number((e.address - r.address) / BigInt(PAGE)), 1), { protect: false });
      });
      await r.write(2 * PAGE + 3, Buffer.from([9]));
      assert.strictEqual(faults.length, 1);
      assert.strictEqual(faults[0].address, r.address + BigInt(2 * PAGE));
      assert.strictEqual(faults[0].wp, true);
      assert.strictEqual(faults[0].write, true);
      assert.strictEqual((await r.read(2 * PAGE + 3, 1))[0], 9);
    });

    it('without it, the same write goes through with no fault', async () => {
      const u = map.open({ features: ['PAGEFAULT_FLAG_WP'] });
      const r = map(4);
      u.register(r, { wp: true });
      u.writeProtect(r, { protect: true });
      const faults = [];
      u.on('pagefault', (e) => faults.push(e));
      await r.write(2 * PAGE, Buffer.from([9]));
      assert.deepStrictEqual(faults, []);
    });
  });

  it('a page written through region.buffer before register() is present: no fault, its bytes read back', async () => {
    const u = map.open();
    const r = map(4);
    new Uint8Array(r.buffer)[PAGE + 10] = 0x5a; // unregistered: an ordinary write on any thread
    u.register(r);
    const faults = [];
    u.on('pagefault', (e) => { faults.push(e); u.zeropage(pages(r, Number((e.address - r.address) / BigInt(PAGE)), 1)); });
    assert.strictEqual((await r.read(PAGE + 10, 1))[0], 0x5a);
    assert.deepStrictEqual(faults, []);
    assert.throws(() => u.copy(pages(r, 1, 1).start, pattern(PAGE, 1)), (e) => e.code === 'EEXIST');
    await r.read(2 * PAGE, 1); // an untouched page still faults
    assert.strictEqual(faults.length, 1);
  });
});
