// Issue 2: bad arguments to every public method of Userfaultfd and Region throw TypeError
// (ERR_INVALID_ARG_TYPE) or RangeError (ERR_OUT_OF_RANGE) before any syscall, and no input
// crashes the process: every case below runs in this one process, which must survive them all.
// Issue 24: a use after close() or unmap() is an Error of its own (ERR_UFFD_CLOSED /
// ERR_UFFD_UNMAPPED), not a bad number; region.read/write reject with it.
const assert = require('assert');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { describeBackends, pattern, PAGE, HUGE, skipWithReason, perTestUffd } = require('../helpers');

const TYPE = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
const RANGE = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };
const CLOSED = { name: 'Error', code: 'ERR_UFFD_CLOSED', message: 'The userfaultfd is closed' };
const UNMAPPED = { name: 'Error', code: 'ERR_UFFD_UNMAPPED', message: 'The region is unmapped' };

// Values that are not an address, a length or a range, with the error each must raise.
const BAD_NUMBERS = [
  ['a string', '4096', TYPE], ['null', null, TYPE], ['an object', {}, TYPE], ['a boolean', true, TYPE],
  ['negative', -4096, RANGE], ['fractional', 4096.5, RANGE], ['NaN', NaN, RANGE],
  ['Infinity', Infinity, RANGE], ['beyond 2^53', 2 ** 53, RANGE],
];

describeBackends('bad arguments: Userfaultfd', (backend) => {
  let uffd, region, other;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  beforeEach(() => {
    region = map(4);
    other = map(1);
  });

  // Every method that takes a range, called as `fn(uffd, range)`.
  const RANGE_METHODS = {
    register: (u, r) => u.register(r),
    unregister: (u, r) => u.unregister(r),
    zeropage: (u, r) => u.zeropage(r),
    wake: (u, r) => u.wake(r),
    writeProtect: (u, r) => u.writeProtect(r, { protect: true }),
    continue: (u, r) => u.continue(r),
    poison: (u, r) => u.poison(r),
    serve: (u, r) => u.serve(r, PageSource.zero()),
  };

  for (const [name, call] of Object.entries(RANGE_METHODS)) {
    it(`${name}(): wrong types, negative, fractional, misaligned, zero length`, () => {
      for (const bad of [undefined, null, 42, 'range', 10n, [], () => {}]) {
        assert.throws(() => call(uffd, bad), TYPE, `${name}(${String(bad)})`);
      }
      for (const [what, v, err] of BAD_NUMBERS) {
        assert.throws(() => call(uffd, { start: v, length: PAGE }), err, `${name} start ${what}`);
        if (typeof v !== 'bigint') assert.throws(() => call(uffd, { start: region.address, length: v }), err, `${name} length ${what}`);
      }
      assert.throws(() => call(uffd, { start: -1n, length: PAGE }), RANGE);
      assert.throws(() => call(uffd, { start: 1n << 64n, length: PAGE }), RANGE);
      assert.throws(() => call(uffd, { start: region.address, length: 10n }), TYPE, 'length as bigint');
      assert.throws(() => call(uffd, { start: region.address + 1n, length: PAGE }), RANGE, 'misaligned start');
      assert.throws(() => call(uffd, { start: region.address, length: PAGE - 1 }), RANGE, 'misaligned length');
      assert.throws(() => call(uffd, { start: region.address, length: 0 }), RANGE, 'zero length');
    });
    it(`${name}(): an unmapped Region, a closed uffd`, () => {
      const r = Region.map(PAGE, { backend });
      r.unmap();
      assert.throws(() => call(uffd, r), UNMAPPED);
      uffd.close();
      assert.throws(() => call(uffd, region), CLOSED);
    });
  }

  it('register(): bad options', () => {
    for (const bad of [null, 1, 'missing']) assert.throws(() => uffd.register(region, bad), TYPE);
    for (const key of ['missing', 'wp', 'minor']) {
      for (const bad of [1, 'yes', null]) assert.throws(() => uffd.register(region, { [key]: bad }), TYPE, key);
    }
    // Nothing was registered by the failed calls.
    assert.ok(uffd.register(region).ioctls.includes('copy'));
  });

  it('copy(): bad dst, bad src, bad options, closed', () => {
    uffd.register(region);
    for (const [what, v, err] of BAD_NUMBERS) assert.throws(() => uffd.copy(v, pattern(PAGE)), err, `dst ${what}`);
    assert.throws(() => uffd.copy(undefined, pattern(PAGE)), TYPE);
    assert.throws(() => uffd.copy(region.address + 1n, pattern(PAGE)), RANGE, 'misaligned dst');
    assert.throws(() => uffd.copy(-1n, pattern(PAGE)), RANGE);
    for (const bad of [undefined, null, 'bytes', 4096, [1, 2, 3], {}]) {
      assert.throws(() => uffd.copy(region.address, bad), TYPE, `src ${String(bad)}`);
    }
    assert.throws(() => uffd.copy(region.address, new Uint8Array(0)), RANGE, 'empty src');
    assert.throws(() => uffd.copy(region.address, new Uint8Array(100)), RANGE, 'src not a page multiple');
    for (const bad of [null, 1, 'x']) assert.throws(() => uffd.copy(region.address, pattern(PAGE), bad), TYPE);
    assert.throws(() => uffd.copy(region.address, pattern(PAGE), { dontWake: 1 }), TYPE);
    assert.throws(() => uffd.copy(region.address, pattern(PAGE), { wp: 'no' }), TYPE);
    const gone = Region.map(PAGE, { backend });
    gone.unmap();
    assert.throws(() => uffd.copy(gone, pattern(PAGE)), UNMAPPED);
    // None of the failures copied anything.
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE)), PAGE);
    uffd.close();
    assert.throws(() => uffd.copy(region.address + BigInt(PAGE), pattern(PAGE)), CLOSED);
  });

  it('zeropage(), continue(), poison(): bad options', () => {
    for (const call of [(o) => uffd.zeropage(region, o), (o) => uffd.continue(region, o), (o) => uffd.poison(region, o)]) {
      for (const bad of [null, 1, 'x', { dontWake: 1 }]) assert.throws(() => call(bad), TYPE);
    }
    assert.throws(() => uffd.continue(region, { wp: 'x' }), TYPE);
  });

  it('writeProtect(): options and protect are required and boolean', () => {
    assert.throws(() => uffd.writeProtect(region), TYPE);
    assert.throws(() => uffd.writeProtect(region, {}), TYPE);
    assert.throws(() => uffd.writeProtect(region, { protect: 1 }), TYPE);
    assert.throws(() => uffd.writeProtect(region, { protect: true, dontWake: 'y' }), TYPE);
    assert.throws(() => uffd.writeProtect(region, null), TYPE);
  });

  it('move(): bad dst, src, length, options, closed', () => {
    uffd.register(region);
    for (const [what, v, err] of BAD_NUMBERS) {
      assert.throws(() => uffd.move(v, other.address, PAGE), err, `dst ${what}`);
      assert.throws(() => uffd.move(region.address, v, PAGE), err, `src ${what}`);
      assert.throws(() => uffd.move(region.address, other.address, v), err, `length ${what}`);
    }
    assert.throws(() => uffd.move(region.address, other.address, 0), RANGE, 'zero length');
    assert.throws(() => uffd.move(region.address, other.address, 100), RANGE, 'misaligned length');
    assert.throws(() => uffd.move(region.address + 4n, other.address, PAGE), RANGE);
    assert.throws(() => uffd.move(region.address, other.address + 4n, PAGE), RANGE);
    assert.throws(() => uffd.move(region.address, other.address, 10n), TYPE);
    for (const bad of [null, 1, { allowSrcHoles: 1 }, { dontWake: 'x' }]) {
      assert.throws(() => uffd.move(region.address, other.address, PAGE, bad), TYPE);
    }
    uffd.close();
    assert.throws(() => uffd.move(region.address, other.address, PAGE), CLOSED);
  });

  it('a dst off by any one bit below the page size is a RangeError, with bigint addresses over 2 ** 32', () => {
    uffd.register(region);
    // region.address + 2 ** 32 keeps every low bit: the check reads only those (lib/base/args.ts).
    for (const base of [region.address, region.address + (1n << 32n)]) {
      for (let bit = 1; bit < PAGE; bit *= 2) {
        assert.throws(() => uffd.copy(base + BigInt(bit), pattern(PAGE)), RANGE, `dst + ${bit}`);
        assert.throws(() => uffd.wake({ start: base + BigInt(bit), length: PAGE }), RANGE, `wake start + ${bit}`);
      }
    }
    // The huge page size (2 MiB on x86-64): bits in the low word's upper half too (bit 16 and up).
    const hugeBase = (region.address + BigInt(HUGE)) & ~BigInt(HUGE - 1);
    for (let bit = PAGE; bit < HUGE; bit *= 2) {
      const range = { start: hugeBase + BigInt(bit), length: HUGE };
      assert.throws(() => uffd.serve(range, PageSource.zero(), { pageSize: HUGE }), RANGE, `serve start + ${bit}`);
    }
    // None of the failures copied anything.
    assert.strictEqual(uffd.copy(region.address, pattern(PAGE)), PAGE);
  });

  it('serve(): bad source and options', () => {
    for (const bad of [undefined, null, {}, 'zero', Buffer.alloc(PAGE)]) {
      assert.throws(() => uffd.serve(region, bad), TYPE);
    }
    assert.throws(() => uffd.serve(region, PageSource.zero(), null), TYPE);
    assert.throws(() => uffd.serve(region, PageSource.zero(), { readahead: 'x' }), TYPE);
    assert.throws(() => uffd.serve(region, PageSource.zero(), { readahead: -1 }), RANGE);
    assert.throws(() => uffd.serve(region, PageSource.zero(), { readahead: 100 }), RANGE);
  });

  it('PageSource: bad arguments', () => {
    for (const bad of [undefined, null, 42, 'x', {}]) assert.throws(() => PageSource.buffer(bad), TYPE);
    for (const bad of [undefined, null, '', {}, 'a\0b']) assert.throws(() => PageSource.file(bad), TYPE);
    assert.throws(() => PageSource.file(-1), RANGE);
    assert.throws(() => PageSource.file(1.5), RANGE);
    assert.throws(() => PageSource.file('/x', null), TYPE);
    assert.throws(() => PageSource.file('/x', { offset: -1 }), RANGE);
    assert.throws(() => PageSource.file('/x', { offset: '0' }), TYPE);
    assert.throws(() => PageSource.file('/x', { mode: 'mmapp' }), TYPE);
  });

  it('stats(), events() on a closed uffd throw; close(), ref(), unref() stay harmless', () => {
    assert.strictEqual(typeof uffd.stats().faults, 'number');
    uffd.close();
    assert.throws(() => uffd.stats(), CLOSED);
    assert.throws(() => uffd.events(), CLOSED);
    assert.doesNotThrow(() => uffd.close());
    assert.strictEqual(uffd.ref(), uffd);
    assert.strictEqual(uffd.unref(), uffd);
    assert.strictEqual(uffd.closed, true);
  });

  it('Userfaultfd.open(): bad options', () => {
    for (const bad of [null, 1, 'native']) assert.throws(() => Userfaultfd.open(bad), TYPE);
    assert.throws(() => Userfaultfd.open({ backend: 'kernel' }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, features: 'THREAD_ID' }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, features: ['NO_SUCH_FEATURE'] }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, features: [1] }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, onSelfFault: 'ignore' }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, userModeOnly: 'yes' }), TYPE);
    assert.throws(() => Userfaultfd.open({ backend, nonBlocking: false }), TYPE); // always non-blocking: refused, not ignored
    Userfaultfd.open({ backend, nonBlocking: true }).close();
  });

  it('Userfaultfd.fromFd(): bad fds', () => {
    for (const bad of [undefined, null, '3', 3n]) assert.throws(() => Userfaultfd.fromFd(bad, { backend }), TYPE);
    for (const bad of [-1, 1.5, NaN]) assert.throws(() => Userfaultfd.fromFd(bad, { backend }), RANGE);
    assert.throws(() => Userfaultfd.fromFd(0, null), TYPE);
  });

  it('a Range given as a Region of the other backend is refused', function () {
    const otherBackend = backend === 'native' ? 'simulator' : 'native';
    let foreign;
    try { foreign = Region.map(PAGE, { backend: otherBackend }); } catch (e) {
      skipWithReason(this, `the ${otherBackend} backend is unavailable (${e.message})`);
    }
    try {
      assert.throws(() => uffd.register(foreign), TYPE);
    } finally { foreign.unmap(); }
  });
});

describeBackends('bad arguments: Region', (backend) => {
  let region;
  const map = perTestUffd(backend);
  beforeEach(() => { region = map(4); });

  it('Region.map(): wrong types, negative, fractional, zero, misaligned, bad options', () => {
    for (const [what, v, err] of BAD_NUMBERS) assert.throws(() => Region.map(v, { backend }), err, what);
    assert.throws(() => Region.map(undefined, { backend }), TYPE);
    assert.throws(() => Region.map(BigInt(PAGE), { backend }), TYPE);
    assert.throws(() => Region.map(0, { backend }), RANGE);
    assert.throws(() => Region.map(PAGE + 1, { backend }), RANGE);
    for (const bad of [null, 1, 'shared']) assert.throws(() => Region.map(PAGE, bad), TYPE);
    assert.throws(() => Region.map(PAGE, { backend, shared: 1 }), TYPE);
    assert.throws(() => Region.map(PAGE, { backend, hugetlb: 'yes' }), TYPE);
    assert.throws(() => Region.map(PAGE, { backend: 'nope' }), TYPE);
    assert.throws(() => Region.map(PAGE, { backend, hugetlb: true }), RANGE, 'not a huge-page multiple');
  });

  it('read(): wrong types, negative, fractional, zero length, outside the region', () => {
    for (const [what, v, err] of BAD_NUMBERS) {
      assert.throws(() => region.read(v, 1), err, `offset ${what}`);
      assert.throws(() => region.read(0, v), err, `length ${what}`);
    }
    assert.throws(() => region.read(), TYPE);
    assert.throws(() => region.read(0n, 1), TYPE);
    assert.throws(() => region.read(0, 0), RANGE);
    assert.throws(() => region.read(4 * PAGE, 1), RANGE);
    assert.throws(() => region.read(4 * PAGE - 1, 2), RANGE);
    assert.throws(() => region.read(0, 4 * PAGE + 1), RANGE);
  });

  it('write(): wrong types, negative, fractional, outside the region; empty data is a no-op', async () => {
    for (const [what, v, err] of BAD_NUMBERS) assert.throws(() => region.write(v, Buffer.alloc(1)), err, `offset ${what}`);
    for (const bad of [undefined, null, 'text', 42, [1, 2], {}]) {
      assert.throws(() => region.write(0, bad), TYPE, `data ${String(bad)}`);
    }
    assert.throws(() => region.write(4 * PAGE, Buffer.alloc(1)), RANGE);
    assert.throws(() => region.write(4 * PAGE - 1, Buffer.alloc(2)), RANGE);
    assert.strictEqual(await region.write(0, new Uint8Array(0)), undefined);
    // Other views and ArrayBuffers are accepted.
    await region.write(0, new Uint16Array([0x0201]));
    await region.write(2, new Uint8Array([3]).buffer);
    assert.deepStrictEqual([...(await region.read(0, 3))], [1, 2, 3]);
  });

  for (const name of ['dontneed', 'protect']) {
    const call = name === 'dontneed' ? (r, o, l) => r.dontneed(o, l) : (r, o, l) => r.protect(o, l, 'read');
    it(`${name}(): wrong types, negative, fractional, misaligned, zero length, outside the region`, () => {
      for (const [what, v, err] of BAD_NUMBERS) {
        assert.throws(() => call(region, v, PAGE), err, `offset ${what}`);
        assert.throws(() => call(region, 0, v), err, `length ${what}`);
      }
      assert.throws(() => call(region, 1, PAGE), RANGE, 'misaligned offset');
      assert.throws(() => call(region, 0, PAGE + 1), RANGE, 'misaligned length');
      assert.throws(() => call(region, 0, 0), RANGE, 'zero length');
      assert.throws(() => call(region, 4 * PAGE, PAGE), RANGE, 'outside');
      assert.throws(() => call(region, 2 * PAGE, 3 * PAGE), RANGE, 'outside');
    });
  }

  it('protect(): an unknown protection', () => {
    for (const bad of [undefined, 'rw', 3, null]) assert.throws(() => region.protect(0, PAGE, bad), TYPE);
  });

  it('alias(): only shared regions have one', () => {
    assert.throws(() => region.alias(), TYPE);
  });

  it('every method of an unmapped region throws (read/write reject); unmap() twice is harmless; buffer is empty', async () => {
    const shared = Region.map(PAGE, { backend, shared: true });
    const view = new Uint8Array(region.buffer);
    region.unmap();
    shared.unmap();
    await assert.rejects(region.read(0, 1), UNMAPPED);
    await assert.rejects(region.write(0, Buffer.alloc(1)), UNMAPPED);
    assert.throws(() => region.dontneed(0, PAGE), UNMAPPED);
    assert.throws(() => region.protect(0, PAGE, 'read'), UNMAPPED);
    assert.throws(() => region.residentPages(), UNMAPPED);
    assert.throws(() => shared.alias(), UNMAPPED);
    assert.doesNotThrow(() => region.unmap());
    assert.strictEqual(region.unmapped, true);
    assert.strictEqual(region.buffer.byteLength, 0);
    assert.strictEqual(view.length, 0, 'a view made before unmap() is detached');
    assert.strictEqual(view[0], undefined);
  });
});
