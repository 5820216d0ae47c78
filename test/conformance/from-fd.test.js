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

  it("a duplicate's listener gets the faults though the original reads non-cooperative events from open()", async function () {
    // The original runs a reader from open() (EVENT_REMOVE must never block madvise), with no
    // consumer of its own: it must leave the faults to the duplicate that consumes them, not
    // hold them until it gets a listener itself.
    requireFeature(this, backend, 'EVENT_REMOVE');
    const a = map.open({ features: ['EVENT_REMOVE'] });
    const region = map(3);
    a.register(region);
    // A fault raised before the duplicate exists: the original's reader takes it first.
    const early = region.read(0, PAGE);
    await new Promise((r) => setTimeout(r, 50));
    const b = map.closeAfter(Userfaultfd.fromFd(a.fd, { backend }));
    const removes = [];
    b.on('remove', (e) => removes.push(e));
    b.on('pagefault', (e) => b.copy(e.address - (e.address % BigInt(PAGE)), pattern(PAGE, 7)));
    assert.deepStrictEqual(await early, pattern(PAGE, 7));
    assert.deepStrictEqual(await region.read(PAGE, 2 * PAGE), Buffer.concat([pattern(PAGE, 7), pattern(PAGE, 7)]));
    // The duplicate reads the non-cooperative events too, now: dontneed() returns.
    region.dontneed(PAGE, PAGE);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepStrictEqual(removes.map((e) => [e.start, e.end]), [[region.address + BigInt(PAGE), region.address + BigInt(2 * PAGE)]]);
    // With the duplicate closed, the original takes the events again: dontneed() still returns.
    b.close();
    region.dontneed(2 * PAGE, PAGE);
  });
});
