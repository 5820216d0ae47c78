// Userfaultfd.fromFd: a second handle on the same uffd (on the kernel a dup of the fd, on the
// simulator a fake fd of this thread), sharing its registrations, faults and features.
const assert = require('assert');
const { Userfaultfd } = require('../../dist');
const { describeBackends, requireFeature, pattern, PAGE, perTestUffd } = require('../helpers');

describeBackends('fromFd', (backend) => {
  const map = perTestUffd(backend);

  it('duplicates: registrations and faults are shared, with the same features; closing the original leaves the copy working', async function () {
    // A cooperative feature: a non-cooperative one starts a's reader at open (docs/hardening.md).
    requireFeature(this, backend, 'EXACT_ADDRESS');
    const a = map.open({ features: ['EXACT_ADDRESS'] });
    const region = map(2);
    const b = map.closeAfter(Userfaultfd.fromFd(a.fd, { backend }));
    assert.notStrictEqual(b.fd, a.fd);
    assert.strictEqual(b.backend, backend);
    assert.deepStrictEqual([...b.features].sort(), [...a.features].sort());
    assert.ok(b.features.includes('EXACT_ADDRESS'));
    assert.ok(b.ioctls.includes('register'));
    a.register(region);
    // b owns the events: its reader takes the fault raised in a's registration.
    b.on('pagefault', (e) => b.copy(e.address - (e.address % BigInt(PAGE)), pattern(PAGE, 4)));
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 4));
    a.close();
    assert.deepStrictEqual(await region.read(PAGE, PAGE), pattern(PAGE, 4));
    // The range stays registered to the uffd while b is open.
    assert.throws(() => map.open().register(region), { code: 'EBUSY' });
  });
});
