// Simulator-only: fake fds and fromFd of them, the buffer of a simulated region, protections,
// hugetlb. What a fromFd duplicate shares, both backends show: test/conformance/from-fd.test.js.
const assert = require('assert');
const { Userfaultfd, Region } = require('../../dist');
const { pattern, PAGE } = require('../helpers');

const backend = 'simulator';

describe('simulator: fake fds and fromFd', () => {
  it('a uffd has a fake fd >= 1000 (-1 once closed); a shared region too, a private one -1', () => {
    const uffd = Userfaultfd.open({ backend });
    const shared = Region.map(PAGE, { backend, shared: true });
    const priv = Region.map(PAGE, { backend });
    try {
      assert.ok(uffd.fd >= 1000);
      assert.ok(shared.fd >= 1000);
      assert.notStrictEqual(shared.fd, uffd.fd);
      assert.strictEqual(priv.fd, -1);
    } finally {
      uffd.close();
      shared.unmap();
      priv.unmap();
    }
    assert.strictEqual(uffd.fd, -1);
    assert.strictEqual(shared.fd, -1);
  });

  it('fromFd of a number that is no open simulated uffd is a TypeError', () => {
    const a = Userfaultfd.open({ backend });
    const fd = a.fd;
    a.close();
    assert.throws(() => Userfaultfd.fromFd(fd, { backend }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => Userfaultfd.fromFd(1, { backend }), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('simulator: the buffer of a region', () => {
  it('is the memory itself: bytes copied in show in the buffer; unmap detaches it and its views', async () => {
    const uffd = Userfaultfd.open({ backend });
    const r = Region.map(2 * PAGE, { backend });
    try {
      uffd.register(r);
      const view = new Uint8Array(r.buffer);
      assert.strictEqual(view.length, 2 * PAGE);
      uffd.copy(r.address, pattern(PAGE, 2));
      assert.deepStrictEqual(Buffer.from(view.subarray(0, PAGE)), pattern(PAGE, 2));
      r.unmap();
      assert.strictEqual(r.buffer.byteLength, 0);
      assert.strictEqual(view.length, 0);
      await assert.rejects(r.read(0, 1), { code: 'ERR_UFFD_UNMAPPED' });
    } finally {
      uffd.close();
      r.unmap();
    }
  });

  it('a shared region and its alias share one buffer; it survives until the last mapping goes', async () => {
    const r = Region.map(PAGE, { backend, shared: true });
    const alias = r.alias();
    try {
      assert.notStrictEqual(alias.address, r.address);
      await alias.write(0, Buffer.from([7]));
      assert.strictEqual(new Uint8Array(r.buffer)[0], 7);
      r.unmap();
      assert.strictEqual(r.buffer.byteLength, 0);
      assert.strictEqual((await alias.read(0, 1))[0], 7);
    } finally {
      r.unmap();
      alias.unmap();
    }
    assert.strictEqual(alias.buffer.byteLength, 0);
  });

  it('an unmap while a read waits on a fault completes once the read ends, then raises unmap', async () => {
    const uffd = Userfaultfd.open({ backend, features: ['EVENT_UNMAP'] });
    const r = Region.map(PAGE, { backend });
    try {
      uffd.register(r);
      const events = [];
      uffd.on('unmap', (e) => events.push(e));
      const fault = new Promise((resolve) => uffd.once('pagefault', resolve));
      const read = r.read(0, 4);
      const e = await fault;
      r.unmap();
      assert.strictEqual(r.buffer.byteLength, 0);
      uffd.copy(e.address, pattern(PAGE, 3));
      assert.deepStrictEqual(await read, pattern(PAGE, 3).subarray(0, 4));
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepStrictEqual(events.map((x) => x.type), ['unmap']);
    } finally {
      uffd.close();
      r.unmap();
    }
  });
});

describe('simulator: protections and hugetlb', () => {
  it("protect('read') makes a write fail with EFAULT, as on the kernel backend (lib/core/region.ts refuses it)", async () => {
    const r = Region.map(2 * PAGE, { backend });
    try {
      r.protect(PAGE, PAGE, 'read');
      await r.write(0, Buffer.from([1]));
      assert.throws(() => r.write(PAGE, Buffer.from([1])), { code: 'EFAULT', syscall: 'region.write' });
      r.protect(0, PAGE, 'none');
      assert.throws(() => r.read(0, 1), { code: 'EFAULT', syscall: 'region.read' });
      assert.deepStrictEqual([...await r.read(PAGE, 1)], [0]);
    } finally {
      r.unmap();
    }
  });

  it('hugetlb regions work in 2 MiB pages: no zeropage ioctl, huge-page alignment required', async () => {
    const HUGE = 2 * 1024 * 1024;
    const uffd = Userfaultfd.open({ backend });
    const r = Region.map(2 * HUGE, { backend, hugetlb: true });
    try {
      assert.deepStrictEqual(uffd.register(r).ioctls, ['wake', 'copy', 'poison']);
      assert.throws(() => uffd.zeropage({ start: r.address, length: HUGE }), { code: 'EINVAL', syscall: 'UFFDIO_ZEROPAGE' });
      assert.throws(() => uffd.copy(r.address, Buffer.alloc(PAGE)), { code: 'EINVAL', syscall: 'UFFDIO_COPY' });
      const faults = [];
      uffd.on('pagefault', (e) => {
        faults.push(e.address);
        uffd.copy(e.address, Buffer.alloc(HUGE, 5));
      });
      assert.deepStrictEqual([...await r.read(HUGE + 10, 2)], [5, 5]);
      assert.deepStrictEqual(faults, [r.address + BigInt(HUGE)]);
    } finally {
      uffd.close();
      r.unmap();
    }
  });
});

describe('simulator: served memory through region.buffer', () => {
  it('a JS read of the buffer sees the source, as the kernel backend answers it on the reader thread', async () => {
    const { PageSource } = require('../../dist');
    const uffd = Userfaultfd.open({ backend });
    const r = Region.map(4 * PAGE, { backend });
    try {
      const src = pattern(3 * PAGE + 10, 6);
      uffd.serve(r, PageSource.buffer(src));
      const view = new Uint8Array(r.buffer);
      assert.deepStrictEqual(Buffer.from(view.subarray(0, src.length)), src);
      assert.strictEqual(view[3 * PAGE + 10], 0);
      // dontneed drops the page; the buffer shows what the next fault would bring again.
      r.dontneed(0, PAGE);
      assert.deepStrictEqual(Buffer.from(view.subarray(0, PAGE)), src.subarray(0, PAGE));
      assert.deepStrictEqual(await r.read(0, PAGE), src.subarray(0, PAGE));
      assert.strictEqual(uffd.stats().faults, 1);
    } finally {
      uffd.close();
      r.unmap();
    }
  });
});
