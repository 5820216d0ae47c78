// Issue 2: every ioctl through the public API, its success path checked by the bytes a
// thread-pool read sees afterwards, and the kernel's documented errors as UffdError codes.
const assert = require('assert');
const { UffdError, probe } = require('../../dist');
const { describeBackends, requireFeature, pattern, delay, PAGE, pages, perTestUffd, collectFaults } = require('../helpers');

/** assert.throws for a UffdError with these fields. */
function throwsUffd(fn, code, syscall, extra = {}) {
  let caught;
  assert.throws(fn, (e) => { caught = e; return true; });
  assert.ok(caught instanceof UffdError, `expected a UffdError, got ${caught && caught.stack}`);
  assert.strictEqual(caught.code, code, caught.message);
  assert.strictEqual(caught.syscall, syscall);
  assert.strictEqual(typeof caught.errno, 'number');
  for (const [k, v] of Object.entries(extra)) assert.strictEqual(caught[k], v, `${k} of ${caught.message}`);
  return caught;
}

const ERRNO = { EEXIST: 17, EAGAIN: 11, EINVAL: 22, EBUSY: 16, ENOENT: 2 };

describeBackends('probe()', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('reports the backend, API, features, ioctls and page size', () => {
    const p = probe({ backend });
    assert.strictEqual(p.backend, backend);
    assert.strictEqual(p.available, true);
    assert.strictEqual(p.api, 0xaa);
    assert.strictEqual(p.pageSize, PAGE);
    assert.ok(Array.isArray(p.features) && p.features.length > 0);
    for (const f of p.features) assert.ok(typeof f === 'string' || typeof f === 'number');
    for (const io of ['register', 'unregister', 'api']) assert.ok(p.ioctls.includes(io), `ioctls has ${io}`);
    assert.ok(['allowed', 'user-mode-only', 'denied'].includes(p.unprivileged));
    if (backend === 'native') assert.ok(p.via === 'syscall' || p.via === 'dev-userfaultfd');
  });
  it('probing twice gives the same answer and leaves an open uffd working', () => {
    const region = map(1);
    uffd.register(region);
    assert.deepStrictEqual(probe({ backend }), probe({ backend }));
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE)), PAGE);
  });
});

describeBackends('ioctl register', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('MISSING returns the range ioctls (wake, copy, zeropage; not writeProtect)', () => {
    const { ioctls } = uffd.register(map(4));
    for (const io of ['wake', 'copy', 'zeropage']) assert.ok(ioctls.includes(io), `${io} in ${ioctls}`);
    assert.ok(!ioctls.includes('writeProtect'));
    assert.ok(!ioctls.includes('continue'));
  });
  it('MISSING|WP adds writeProtect', function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const { ioctls } = uffd.register(map(1), { missing: true, wp: true });
    assert.ok(ioctls.includes('writeProtect') && ioctls.includes('copy'), String(ioctls));
  });
  it('MINOR on a shared region adds continue', function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const { ioctls } = uffd.register(map(1, { shared: true }), { minor: true });
    assert.ok(ioctls.includes('continue'), String(ioctls));
  });
  it('mode 0 ({ missing: false }) is EINVAL', () => {
    throwsUffd(() => uffd.register(map(1), { missing: false }), 'EINVAL', 'UFFDIO_REGISTER', { errno: ERRNO.EINVAL });
  });
  it('MINOR on anonymous memory is EINVAL', () => {
    throwsUffd(() => uffd.register(map(1), { minor: true }), 'EINVAL', 'UFFDIO_REGISTER');
  });
  it('the same range registered by two uffds is EBUSY', () => {
    const region = map(2);
    uffd.register(region);
    throwsUffd(() => map.open().register(region), 'EBUSY', 'UFFDIO_REGISTER', { errno: ERRNO.EBUSY });
  });
  it('misaligned start or length is a RangeError before any syscall', () => {
    const region = map(2);
    assert.throws(() => uffd.register({ start: region.address + 1n, length: PAGE }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => uffd.register({ start: region.address, length: PAGE + 1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });
});

describeBackends('ioctl unregister', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('after unregister the range faults as ordinary memory (reads zero, copy is ENOENT)', async () => {
    const region = map(2);
    uffd.register(region);
    uffd.unregister(region);
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
    throwsUffd(() => uffd.copy(pages(region, 0, 1), pattern(PAGE)), 'ENOENT', 'UFFDIO_COPY');
  });
  it('unregistering one page leaves its neighbour registered', async () => {
    const region = map(2);
    uffd.register(region);
    uffd.unregister(pages(region, 0, 1));
    assert.deepStrictEqual(await region.read(0, PAGE), Buffer.alloc(PAGE));
    assert.strictEqual(uffd.copy(pages(region, 1, 1), pattern(PAGE, 4)), PAGE);
    assert.deepStrictEqual(await region.read(PAGE, PAGE), pattern(PAGE, 4));
  });
});

describeBackends('ioctl copy', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('copies a pattern into missing pages and returns the bytes', async () => {
    const region = map(4);
    uffd.register(region);
    assert.strictEqual(uffd.copy(pages(region, 1, 1), pattern(2 * PAGE, 3)), 2 * PAGE);
    assert.deepStrictEqual(await region.read(PAGE, 2 * PAGE), pattern(2 * PAGE, 3));
  });
  it('accepts a number address, a Region as dst, and an ArrayBuffer source', async () => {
    const region = map(2);
    uffd.register(region);
    const src = pattern(PAGE, 8);
    assert.strictEqual(uffd.copy(region, src.buffer.slice(src.byteOffset, src.byteOffset + PAGE)), PAGE);
    assert.strictEqual(uffd.copy(Number(region.address) + PAGE, pattern(PAGE, 9)), PAGE);
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), Buffer.concat([pattern(PAGE, 8), pattern(PAGE, 9)]));
  });
  it('onto a present page is EEXIST', () => {
    const region = map(1);
    uffd.register(region);
    uffd.copy(region.address, pattern(PAGE));
    throwsUffd(() => uffd.copy(region.address, pattern(PAGE)), 'EEXIST', 'UFFDIO_COPY', { errno: ERRNO.EEXIST });
  });
  it('a 4-page copy whose 3rd page is present is EAGAIN with the bytes of 2 pages', async () => {
    const region = map(4);
    uffd.register(region);
    uffd.copy(pages(region, 2, 1), pattern(PAGE, 77));
    const e = throwsUffd(() => uffd.copy(region.address, pattern(4 * PAGE, 5)), 'EAGAIN', 'UFFDIO_COPY', { errno: ERRNO.EAGAIN });
    assert.strictEqual(e.bytes, 2 * PAGE);
    // The two pages before it were copied; the present page kept its bytes.
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), pattern(4 * PAGE, 5).subarray(0, 2 * PAGE));
    assert.deepStrictEqual(await region.read(2 * PAGE, PAGE), pattern(PAGE, 77));
    // Retrying from dst + bytes shows the error behind it.
    throwsUffd(() => uffd.copy(pages(region, 2, 1), pattern(2 * PAGE)), 'EEXIST', 'UFFDIO_COPY');
  });
  it('into a range this uffd never registered is ENOENT', () => {
    const region = map(1);
    throwsUffd(() => uffd.copy(region.address, pattern(PAGE)), 'ENOENT', 'UFFDIO_COPY', { errno: ERRNO.ENOENT });
  });
  it('with wp: true on a range not registered for WP is EINVAL', () => {
    const region = map(1);
    uffd.register(region);
    throwsUffd(() => uffd.copy(region.address, pattern(PAGE), { wp: true }), 'EINVAL', 'UFFDIO_COPY');
  });
  it('with wp: true on a WP range maps the page write-protected (a write then faults with wp)', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const region = map(1);
    uffd.register(region, { missing: true, wp: true });
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE, 2), { wp: true }), PAGE);
    const faults = collectFaults(uffd, 1);
    const write = region.write(0, Buffer.from([9]));
    const [f] = await faults;
    assert.strictEqual(f.wp, true);
    assert.strictEqual(f.write, true);
    uffd.writeProtect(region, { protect: false });
    await write;
    const expected = pattern(PAGE, 2);
    expected[0] = 9;
    assert.deepStrictEqual(await region.read(0, PAGE), expected);
  });
  it('misaligned dst or source length is a RangeError before any syscall', () => {
    const region = map(2);
    uffd.register(region);
    assert.throws(() => uffd.copy(region.address + 8n, pattern(PAGE)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => uffd.copy(region.address, pattern(PAGE + 1)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    // Nothing was done: the page is still missing.
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE)), PAGE);
  });
});

describeBackends('ioctl zeropage', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('maps zero pages and returns the bytes', async () => {
    const region = map(3);
    uffd.register(region);
    assert.strictEqual(uffd.zeropage(pages(region, 0, 2)), 2 * PAGE);
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
    throwsUffd(() => uffd.copy(region.address, pattern(PAGE)), 'EEXIST', 'UFFDIO_COPY');
    // A zero page is an ordinary page: writes land.
    await region.write(100, Buffer.from([1, 2, 3]));
    assert.deepStrictEqual([...(await region.read(100, 3))], [1, 2, 3]);
  });
  it('onto a present page is EEXIST', () => {
    const region = map(1);
    uffd.register(region);
    uffd.copy(region.address, pattern(PAGE));
    throwsUffd(() => uffd.zeropage(region), 'EEXIST', 'UFFDIO_ZEROPAGE');
  });
  it('into an unregistered range is ENOENT', () => {
    throwsUffd(() => uffd.zeropage(map(1)), 'ENOENT', 'UFFDIO_ZEROPAGE');
  });
  it('a partly present range is EAGAIN with the bytes done', () => {
    const region = map(3);
    uffd.register(region);
    uffd.copy(pages(region, 1, 1), pattern(PAGE));
    const e = throwsUffd(() => uffd.zeropage(region), 'EAGAIN', 'UFFDIO_ZEROPAGE');
    assert.strictEqual(e.bytes, PAGE);
  });
});

describeBackends('ioctl wake', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('wakes a read left waiting by a dontWake copy', async () => {
    const region = map(2);
    uffd.register(region);
    const faults = collectFaults(uffd, 1);
    let done = false;
    const read = region.read(0, PAGE).then((b) => { done = true; return b; });
    await faults;
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE, 6), { dontWake: true }), PAGE);
    await delay(50);
    assert.strictEqual(done, false, 'the read stays asleep after a dontWake copy');
    uffd.wake(pages(region, 0, 1));
    assert.deepStrictEqual(await read, pattern(PAGE, 6));
  });
  it('with nothing waiting it succeeds and changes nothing', async () => {
    const region = map(1);
    uffd.register(region);
    uffd.wake(region);
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE)), PAGE);
  });
  it('misaligned is a RangeError before any syscall', () => {
    const region = map(1);
    assert.throws(() => uffd.wake({ start: region.address, length: 10 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });
});

describeBackends('ioctl writeProtect', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('protect: a write faults with wp and write set; un-protecting lets it land', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const region = map(2);
    uffd.register(region, { missing: true, wp: true });
    uffd.copy(region.address, pattern(2 * PAGE, 1));
    assert.strictEqual(uffd.writeProtect(region, { protect: true }), undefined);
    // Reads of a protected page do not fault.
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), pattern(2 * PAGE, 1));
    const faults = collectFaults(uffd, 1);
    const write = region.write(PAGE + 5, Buffer.from([0xee]));
    const [f] = await faults;
    assert.strictEqual(f.address, region.address + BigInt(PAGE));
    assert.strictEqual(f.wp, true);
    assert.strictEqual(f.write, true);
    uffd.writeProtect(pages(region, 1, 1), { protect: false });
    await write;
    const expected = pattern(2 * PAGE, 1);
    expected[PAGE + 5] = 0xee;
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), expected);
  });
  it('un-protect with dontWake leaves the writer waiting until wake()', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const region = map(1);
    uffd.register(region, { missing: true, wp: true });
    uffd.copy(region.address, pattern(PAGE, 1), { wp: true });
    const faults = collectFaults(uffd, 1);
    let done = false;
    const write = region.write(0, Buffer.from([7])).then(() => { done = true; });
    await faults;
    uffd.writeProtect(region, { protect: false, dontWake: true });
    await delay(50);
    assert.strictEqual(done, false);
    uffd.wake(region);
    await write;
    assert.strictEqual((await region.read(0, 1))[0], 7);
  });
  it('on a range not registered for WP is ENOENT', function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const region = map(1);
    uffd.register(region);
    uffd.copy(region.address, pattern(PAGE));
    throwsUffd(() => uffd.writeProtect(region, { protect: true }), 'ENOENT', 'UFFDIO_WRITEPROTECT');
  });
});

describeBackends('ioctl continue', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('maps the page-cache page filled through alias() and returns the bytes', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const uffd = map.open({ features: ['MINOR_SHMEM'] });
    const region = map(2, { shared: true });
    const alias = map.keep(region.alias());
    await alias.write(0, pattern(2 * PAGE, 12));
    uffd.register(region, { minor: true });
    assert.strictEqual(uffd.continue(pages(region, 0, 2)), 2 * PAGE);
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), pattern(2 * PAGE, 12));
  });
  it('answers a MINOR fault raised by a thread-pool read', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const uffd = map.open({ features: ['MINOR_SHMEM'] });
    const region = map(1, { shared: true });
    const alias = map.keep(region.alias());
    await alias.write(0, pattern(PAGE, 13));
    uffd.register(region, { minor: true });
    const faults = collectFaults(uffd, 1);
    const read = region.read(0, PAGE);
    const [f] = await faults;
    assert.strictEqual(f.minor, true);
    assert.strictEqual(f.address, region.address);
    uffd.continue(region);
    assert.deepStrictEqual(await read, pattern(PAGE, 13));
  });
  it('a second continue is EEXIST', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const uffd = map.open({ features: ['MINOR_SHMEM'] });
    const region = map(1, { shared: true });
    const alias = map.keep(region.alias());
    await alias.write(0, pattern(PAGE));
    uffd.register(region, { minor: true });
    uffd.continue(region);
    throwsUffd(() => uffd.continue(region), 'EEXIST', 'UFFDIO_CONTINUE');
  });
  it('on anonymous memory (registered MISSING) is EINVAL', () => {
    const region = map(1);
    uffd.register(region);
    throwsUffd(() => uffd.continue(region), 'EINVAL', 'UFFDIO_CONTINUE');
  });
});

describeBackends('ioctl poison', (backend) => {
  const map = perTestUffd(backend);
  it('poisons missing pages: returns the bytes; POISON again is EEXIST; COPY replaces the poison', async function () {
    requireFeature(this, backend, 'POISON');
    const uffd = map.open({ features: ['POISON'] });
    const region = map(2);
    uffd.register(region);
    assert.strictEqual(uffd.poison(pages(region, 0, 1)), PAGE);
    throwsUffd(() => uffd.poison(pages(region, 0, 1)), 'EEXIST', 'UFFDIO_POISON', { errno: ERRNO.EEXIST });
    // The kernel treats a poison marker as an empty slot for COPY (checked on 6.18).
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE, 30)), PAGE);
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 30));
    // The neighbour is untouched.
    assert.strictEqual(uffd.copy(pages(region, 1, 1), pattern(PAGE)), PAGE);
  });
  it('a thread-pool read of a poisoned page rejects with code SIGBUS; the process lives on', async function () {
    requireFeature(this, backend, 'POISON');
    const uffd = map.open({ features: ['POISON'] });
    const region = map(2);
    uffd.register(region);
    uffd.poison(pages(region, 1, 1));
    uffd.copy(pages(region, 0, 1), pattern(PAGE, 3));
    await assert.rejects(region.read(PAGE, 10), { code: 'SIGBUS', syscall: 'read' });
    await assert.rejects(region.write(PAGE + 2, Buffer.alloc(4)), { code: 'SIGBUS', syscall: 'write' });
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 3));
  });
  it('on a present page is EEXIST', function () {
    requireFeature(this, backend, 'POISON');
    const uffd = map.open({ features: ['POISON'] });
    const region = map(1);
    uffd.register(region);
    uffd.zeropage(region);
    throwsUffd(() => uffd.poison(region), 'EEXIST', 'UFFDIO_POISON');
  });
});

describeBackends('ioctl move', (backend) => {
  const map = perTestUffd(backend);
  it('moves a page: dst reads the bytes, the source reads zero after', async function () {
    requireFeature(this, backend, 'MOVE');
    const uffd = map.open({ features: ['MOVE'] });
    const src = map(2);
    const dst = map(2);
    await src.write(0, pattern(2 * PAGE, 21));
    uffd.register(dst);
    assert.strictEqual(uffd.move(dst, src, 2 * PAGE), 2 * PAGE);
    assert.deepStrictEqual(await dst.read(0, 2 * PAGE), pattern(2 * PAGE, 21));
    assert.deepStrictEqual(await src.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
  });
  it('a hole in the source is ENOENT without allowSrcHoles, and succeeds with it', async function () {
    requireFeature(this, backend, 'MOVE');
    const uffd = map.open({ features: ['MOVE'] });
    const src = map(2);
    const dst = map(2);
    await src.write(PAGE, pattern(PAGE, 22)); // page 0 of src is a hole
    uffd.register(dst);
    throwsUffd(() => uffd.move(dst.address, src.address, PAGE), 'ENOENT', 'UFFDIO_MOVE');
    assert.strictEqual(uffd.move(dst.address, src.address, 2 * PAGE, { allowSrcHoles: true }), 2 * PAGE);
    assert.deepStrictEqual(await dst.read(PAGE, PAGE), pattern(PAGE, 22));
    assert.deepStrictEqual(await src.read(PAGE, PAGE), Buffer.alloc(PAGE));
  });
  it('onto a present destination page is EEXIST', async function () {
    requireFeature(this, backend, 'MOVE');
    const uffd = map.open({ features: ['MOVE'] });
    const src = map(1);
    const dst = map(1);
    await src.write(0, pattern(PAGE));
    uffd.register(dst);
    uffd.zeropage(dst);
    throwsUffd(() => uffd.move(dst, src, PAGE), 'EEXIST', 'UFFDIO_MOVE');
    assert.deepStrictEqual(await src.read(0, PAGE), pattern(PAGE));
  });
  it('misaligned length or addresses are a RangeError before any syscall', async function () {
    requireFeature(this, backend, 'MOVE');
    const uffd = map.open({ features: ['MOVE'] });
    const src = map(1);
    const dst = map(1);
    uffd.register(dst);
    assert.throws(() => uffd.move(dst, src, 100), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => uffd.move(dst.address + 1n, src.address, PAGE), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => uffd.move(dst.address, src.address + 1n, PAGE), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });
});
