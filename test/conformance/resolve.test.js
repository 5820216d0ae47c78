// The resolving ioctls on their own: bytes done, EEXIST, partial EAGAIN, ENOENT, EINVAL, EFAULT.
const assert = require('assert');
const { at, pages, describeBackends, requireFeature, pattern, PAGE, perTestUffd, NO_MAPPING } = require('../helpers');


describeBackends('resolve: copy, zeropage, poison, continue, move', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('copy fills missing pages and returns the bytes copied', async () => {
    const r = map(4);
    uffd.register(r);
    assert.strictEqual(uffd.copy(r.address, pattern(2 * PAGE, 3)), 2 * PAGE);
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), pattern(2 * PAGE, 3));
    assert.strictEqual(r.residentPages(), 2);
  });

  it('copy onto a present page is EEXIST with bytes 0', () => {
    const r = map(2);
    uffd.register(r);
    uffd.copy(r.address, pattern(PAGE));
    assert.throws(() => uffd.copy(r.address, pattern(PAGE)), { code: 'EEXIST', errno: 17, syscall: 'UFFDIO_COPY', bytes: 0 });
  });

  it('a 4-page copy whose 3rd page is present is EAGAIN with the bytes of 2 pages; retrying from there is EEXIST', async () => {
    const r = map(4);
    uffd.register(r);
    uffd.copy(at(r, 2), pattern(PAGE, 7));
    assert.throws(() => uffd.copy(r.address, pattern(4 * PAGE, 1)), { code: 'EAGAIN', errno: 11, syscall: 'UFFDIO_COPY', bytes: 2 * PAGE });
    assert.throws(() => uffd.copy(at(r, 2), pattern(2 * PAGE, 1).subarray(0, 2 * PAGE)), { code: 'EEXIST', bytes: 0 });
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), pattern(2 * PAGE, 1));
    assert.deepStrictEqual(await r.read(2 * PAGE, PAGE), pattern(PAGE, 7));
  });

  it('copy into unregistered memory, or no mapping, is ENOENT with bytes 0', () => {
    const r = map(2);
    uffd.register(pages(r, 0, 1));
    assert.throws(() => uffd.copy(at(r, 1), pattern(PAGE)), { code: 'ENOENT', errno: 2, syscall: 'UFFDIO_COPY', bytes: 0 });
    assert.throws(() => uffd.copy(NO_MAPPING, pattern(PAGE)), { code: 'ENOENT', bytes: 0 });
    // A range running past the registered part is refused whole.
    assert.throws(() => uffd.copy(r.address, pattern(2 * PAGE)), { code: 'ENOENT', bytes: 0 });
  });

  it('copy with wp on a range not registered for WP is EINVAL', () => {
    const r = map(1);
    uffd.register(r);
    assert.throws(() => uffd.copy(r.address, pattern(PAGE), { wp: true }), { code: 'EINVAL', syscall: 'UFFDIO_COPY', bytes: 0 });
  });

  it('zeropage: bytes, EEXIST, and EAGAIN with the bytes done', async () => {
    const r = map(4);
    uffd.register(r);
    uffd.copy(at(r, 2), pattern(PAGE, 5));
    assert.throws(() => uffd.zeropage(r), { code: 'EAGAIN', syscall: 'UFFDIO_ZEROPAGE', bytes: 2 * PAGE });
    assert.throws(() => uffd.zeropage(pages(r, 1, 1)), { code: 'EEXIST', syscall: 'UFFDIO_ZEROPAGE', bytes: 0 });
    assert.strictEqual(uffd.zeropage(pages(r, 3, 1)), PAGE);
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
  });

  it('zeropage and poison outside any registration are ENOENT', () => {
    const r = map(1);
    assert.throws(() => uffd.zeropage(r), { code: 'ENOENT', syscall: 'UFFDIO_ZEROPAGE', bytes: 0 });
    assert.throws(() => uffd.poison(r), { code: 'ENOENT', syscall: 'UFFDIO_POISON', bytes: 0 });
    assert.throws(() => uffd.writeProtect(r, { protect: true }), { code: 'ENOENT', syscall: 'UFFDIO_WRITEPROTECT', bytes: undefined });
  });

  it('poison: EEXIST on a present or poisoned page, EAGAIN with bytes when partial', function () {
    requireFeature(this, backend, 'POISON');
    const r = map(3);
    uffd.register(r);
    uffd.copy(at(r, 1), pattern(PAGE));
    assert.throws(() => uffd.poison(r), { code: 'EAGAIN', syscall: 'UFFDIO_POISON', bytes: PAGE });
    assert.throws(() => uffd.poison(pages(r, 0, 1)), { code: 'EEXIST', syscall: 'UFFDIO_POISON', bytes: 0 });
    assert.throws(() => uffd.poison(pages(r, 1, 1)), { code: 'EEXIST', bytes: 0 });
    assert.strictEqual(uffd.poison(pages(r, 2, 1)), PAGE);
    assert.strictEqual(r.residentPages(), 1);
  });

  it('dontneed drops a poison marker: the page can be filled again', async function () {
    requireFeature(this, backend, 'POISON');
    const r = map(1);
    uffd.register(r);
    uffd.poison(r);
    r.dontneed(0, PAGE);
    assert.strictEqual(uffd.copy(r.address, pattern(PAGE, 2)), PAGE);
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 2));
  });

  it('writeProtect with protect and dontWake together is EINVAL', () => {
    const r = map(1);
    uffd.register(r, { missing: true, wp: true });
    assert.throws(() => uffd.writeProtect(r, { protect: true, dontWake: true }), { code: 'EINVAL', syscall: 'UFFDIO_WRITEPROTECT' });
  });

  it('writeProtect on a range registered without WP is ENOENT', () => {
    const r = map(1);
    uffd.register(r);
    assert.throws(() => uffd.writeProtect(r, { protect: true }), { code: 'ENOENT', syscall: 'UFFDIO_WRITEPROTECT' });
  });

  describe('continue (shared memory, MINOR)', () => {
    it('maps page-cache pages filled through an alias; a second continue is EEXIST', async function () {
      requireFeature(this, backend, 'MINOR_SHMEM');
      const r = map(2, { shared: true });
      const alias = r.alias();
      map.keep(alias);
      uffd.register(r, { minor: true });
      await alias.write(0, pattern(2 * PAGE, 4));
      assert.strictEqual(uffd.continue(r), 2 * PAGE);
      assert.throws(() => uffd.continue(pages(r, 0, 1)), { code: 'EEXIST', errno: 17, syscall: 'UFFDIO_CONTINUE', bytes: 0 });
      assert.deepStrictEqual(await r.read(0, 2 * PAGE), pattern(2 * PAGE, 4));
    });

    it('a page not in the page cache is EFAULT; partial continue is EAGAIN with bytes', async function () {
      requireFeature(this, backend, 'MINOR_SHMEM');
      const r = map(3, { shared: true });
      const alias = r.alias();
      map.keep(alias);
      uffd.register(r, { minor: true });
      await alias.write(0, pattern(PAGE, 4));
      assert.throws(() => uffd.continue(pages(r, 2, 1)), { code: 'EFAULT', syscall: 'UFFDIO_CONTINUE', bytes: 0 });
      assert.throws(() => uffd.continue(r), { code: 'EAGAIN', syscall: 'UFFDIO_CONTINUE', bytes: PAGE });
    });

    it('continue on anonymous memory is EINVAL', () => {
      const r = map(1);
      uffd.register(r);
      assert.throws(() => uffd.continue(r), { code: 'EINVAL', syscall: 'UFFDIO_CONTINUE', bytes: 0 });
    });

    it('copy into a shared page already in the page cache is EEXIST', async () => {
      const r = map(1, { shared: true });
      const alias = r.alias();
      map.keep(alias);
      uffd.register(r, { minor: true });
      await alias.write(0, pattern(PAGE, 4));
      assert.throws(() => uffd.copy(r.address, pattern(PAGE)), { code: 'EEXIST', syscall: 'UFFDIO_COPY', bytes: 0 });
    });

    it('copy into a shared range fills the page cache that the alias sees', async () => {
      const r = map(1, { shared: true });
      const alias = r.alias();
      map.keep(alias);
      uffd.register(r);
      uffd.copy(r.address, pattern(PAGE, 8));
      assert.deepStrictEqual(await alias.read(0, PAGE), pattern(PAGE, 8));
      assert.strictEqual(alias.residentPages(), 1);
    });
  });

  describe('move', () => {
    it('moves pages: the source reads zero after, the destination has the bytes', async function () {
      requireFeature(this, backend, 'MOVE');
      const dst = map(2);
      const src = map(2);
      uffd.register(dst);
      await src.write(0, pattern(2 * PAGE, 6));
      assert.strictEqual(uffd.move(dst, src, 2 * PAGE), 2 * PAGE);
      assert.deepStrictEqual(await dst.read(0, 2 * PAGE), pattern(2 * PAGE, 6));
      assert.strictEqual(src.residentPages(), 0);
      assert.deepStrictEqual(await src.read(0, 2 * PAGE), Buffer.alloc(2 * PAGE));
    });

    it('a hole in the source is ENOENT, or skipped and counted with allowSrcHoles', async function () {
      requireFeature(this, backend, 'MOVE');
      const dst = map(3);
      const src = map(3);
      uffd.register(dst);
      await src.write(0, pattern(PAGE, 1));
      await src.write(2 * PAGE, pattern(PAGE, 3));
      assert.throws(() => uffd.move(at(dst, 1), at(src, 1), PAGE), { code: 'ENOENT', syscall: 'UFFDIO_MOVE', bytes: 0 });
      assert.throws(() => uffd.move(dst, src, 3 * PAGE), { code: 'EAGAIN', syscall: 'UFFDIO_MOVE', bytes: PAGE });
      assert.strictEqual(uffd.move(at(dst, 1), at(src, 1), 2 * PAGE, { allowSrcHoles: true }), 2 * PAGE);
      assert.deepStrictEqual(await dst.read(2 * PAGE, PAGE), pattern(PAGE, 3));
    });

    it('a present destination page is EEXIST', async function () {
      requireFeature(this, backend, 'MOVE');
      const dst = map(1);
      const src = map(1);
      uffd.register(dst);
      uffd.zeropage(dst);
      await src.write(0, pattern(PAGE));
      assert.throws(() => uffd.move(dst, src, PAGE), { code: 'EEXIST', syscall: 'UFFDIO_MOVE', bytes: 0 });
    });

    it('shared memory, or a destination this uffd did not register, is EINVAL', async function () {
      requireFeature(this, backend, 'MOVE');
      const shared = map(1, { shared: true });
      const dst = map(1);
      const src = map(1);
      await src.write(0, pattern(PAGE));
      assert.throws(() => uffd.move(dst, src, PAGE), { code: 'EINVAL', syscall: 'UFFDIO_MOVE', bytes: 0 });
      uffd.register(shared);
      assert.throws(() => uffd.move(shared, src, PAGE), { code: 'EINVAL', syscall: 'UFFDIO_MOVE' });
      assert.throws(() => uffd.move(NO_MAPPING, src, PAGE), { code: 'ENOENT', syscall: 'UFFDIO_MOVE' });
    });
  });
});
