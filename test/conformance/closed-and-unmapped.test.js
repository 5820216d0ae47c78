// A closed uffd and an unmapped region (issue 24), decided once in the shared layer so that both
// backends give one answer, each case in a child with a deadline:
// - any use after close() is an Error with code ERR_UFFD_CLOSED, after unmap() ERR_UFFD_UNMAPPED
//   (not a RangeError: nothing is wrong with the numbers); region.read/write reject with it;
// - an options getter that closes the uffd, or detaches `src`, mid-call: the closed error (the
//   simulator used to register anyway, or answer ENOENT/EINVAL), or ERR_OUT_OF_RANGE for the
//   empty `src` (the simulator copied 0 bytes);
// - unmap() of a served (or registered) region stops its serving: a new region mapped at the
//   same address is never answered by the old source; a read in flight across unmap() still
//   gets the source's bytes.
const assert = require('assert');
const { describeBackends, runUffdChild } = require('../helpers');

const DEADLINE = 15000;

/** runUffdChild with `other` (a second region of 4 pages) and `outcome(fn)`: what fn() returned or threw. */
function child(backend, body) {
  return runUffdChild(backend, `
    const other = Region.map(4 * PAGE, { backend: '${backend}' });
    const outcome = (fn) => {
      try { const v = fn(); return v && typeof v.then === 'function' ? 'a promise' : { returned: typeof v }; } catch (e) {
        return { name: e.constructor.name, code: e.code };
      }
    };
    ${body}`, { timeoutMs: DEADLINE });
}

const CLOSED = { name: 'Error', code: 'ERR_UFFD_CLOSED' };
const UNMAPPED = { name: 'Error', code: 'ERR_UFFD_UNMAPPED' };

// Every method whose options object can hold a getter, called so that the getter runs mid-call.
const WITH_OPTIONS = {
  register: 'u.register(r, o)',
  copy: 'u.copy(r.address, Buffer.alloc(PAGE, 1), o)',
  zeropage: 'u.zeropage(r, o)',
  writeProtect: "u.writeProtect(r, Object.assign(o, { protect: true }))",
  continue: 'u.continue(r, o)',
  poison: 'u.poison(r, o)',
  move: 'u.move(r.address, other.address, PAGE, o)',
  serve: 'u.serve(r, PageSource.zero(), o)',
  dirtyPages: 'u.dirtyPages(r, o)',
  readSync: 'u.readSync(Object.assign(o, { timeoutMs: 0 }))',
};

describeBackends('closed uffds and unmapped regions: one answer on both backends', (backend) => {
  beforeEach(function () { this.timeout(DEADLINE + 10000); });

  it('after close(): every method throws Error ERR_UFFD_CLOSED; after unmap(): ERR_UFFD_UNMAPPED, and read/write reject', async () => {
    const out = await child(backend, `
      u.register(r);
      const gone = Region.map(PAGE, { backend: '${backend}' });
      gone.unmap();
      out.unmapped = ['u.register(gone)', 'u.copy(gone, Buffer.alloc(PAGE))', 'gone.dontneed(0, PAGE)', 'gone.residentPages()']
        .map((src) => outcome(() => eval(src)));
      out.readSync = outcome(() => gone.read(0, 1).catch(() => undefined));
      out.read = await gone.read(0, 1).then(() => 'resolved', (e) => ({ name: e.constructor.name, code: e.code }));
      out.write = await gone.write(0, Buffer.alloc(1)).then(() => 'resolved', (e) => ({ name: e.constructor.name, code: e.code }));
      u.close();
      out.closed = ['u.register(other)', 'u.unregister(r)', 'u.copy(r.address, Buffer.alloc(PAGE))', 'u.zeropage(r)', 'u.wake(r)',
        'u.writeProtect(r, { protect: true })', 'u.continue(r)', 'u.poison(r)', 'u.move(r.address, other.address, PAGE)',
        'u.serve(other, PageSource.zero())', 'u.stats()', 'u.events()', 'u.readSync({ timeoutMs: 0 })', 'u.dirtyPages(r)',
        'u.saveWorkingSet(r, "/nonexistent")'].map((src) => [src, outcome(() => eval(src))]);
      out.snapshot = await u.snapshot(r, '/dev/null').then(() => 'resolved', (e) => ({ name: e.constructor.name, code: e.code }));`);
    assert.deepStrictEqual(out.unmapped, [UNMAPPED, UNMAPPED, UNMAPPED, UNMAPPED], JSON.stringify(out));
    assert.strictEqual(out.readSync, 'a promise', 'region.read() after unmap() returns a promise, it does not throw');
    assert.deepStrictEqual([out.read, out.write], [UNMAPPED, UNMAPPED]);
    for (const [src, got] of out.closed) assert.deepStrictEqual(got, CLOSED, src);
    assert.deepStrictEqual(out.snapshot, CLOSED);
  });

  it('an options getter that closes the uffd mid-call: ERR_UFFD_CLOSED from every method, nothing done', async () => {
    const out = await child(backend, `
      out.calls = {};
      for (const [name, src] of Object.entries(${JSON.stringify(WITH_OPTIONS)})) {
        const v = Userfaultfd.open({ backend: '${backend}' });
        const o = { get dontWake() { v.close(); return undefined; }, get wp() { v.close(); return undefined; },
          get reset() { v.close(); return undefined; }, get max() { v.close(); return undefined; },
          get readahead() { v.close(); return undefined; } };
        out.calls[name] = outcome(() => eval(src.replace(/\\bu\\./, 'v.')));
        v.close();
      }
      // Nothing stayed registered: an ordinary page, written and read back.
      await r.write(0, Buffer.from([9]));
      out.plain = (await r.read(0, 1))[0];`);
    for (const name of Object.keys(WITH_OPTIONS)) assert.deepStrictEqual(out.calls[name], CLOSED, `${name}: ${JSON.stringify(out)}`);
    assert.strictEqual(out.plain, 9);
  });

  it('an options getter that detaches src mid-copy: ERR_OUT_OF_RANGE (an empty src), on both', async () => {
    const out = await child(backend, `
      u.register(r);
      const ab = new ArrayBuffer(PAGE);
      const o = { get dontWake() { structuredClone(ab, { transfer: [ab] }); return false; } };
      out.copy = outcome(() => u.copy(r.address, new Uint8Array(ab), o));`);
    assert.deepStrictEqual(out.copy, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, JSON.stringify(out));
  });

  it('unmap() stops serving: a new region at the same address is answered by its own source, not the old one', async () => {
    const out = await child(backend, `
      const oldBytes = Buffer.alloc(4 * PAGE, 0x0d);
      const newBytes = Buffer.alloc(4 * PAGE, 0x0e);
      // A served region, unmapped; then a new one (mmap reuses the address on the kernel).
      u.serve(r, PageSource.buffer(oldBytes));
      const address = r.address;
      r.unmap();
      const again = Region.map(4 * PAGE, { backend: '${backend}' });
      out.sameAddress = again.address === address;
      u.register(again);
      u.on('pagefault', (e) => u.copy(e.address, newBytes.subarray(0, PAGE)));
      out.registered = (await again.read(0, PAGE)).every((b) => b === 0x0e);
      u.removeAllListeners('pagefault');
      u.unregister(again);
      // Served anew at the same address: no stale 'already served' refusal, and its own bytes.
      out.served = outcome(() => u.serve(again, PageSource.buffer(newBytes)));
      out.servedBytes = (await again.read(PAGE, PAGE)).every((b) => b === 0x0e);
      again.unmap();`);
    assert.strictEqual(out.registered, true, JSON.stringify(out));
    assert.deepStrictEqual(out.served, { returned: 'object' });
    assert.strictEqual(out.servedBytes, true);
  });

  it('unmap() with a read in flight: the read still gets its source\'s bytes (the mapping goes when it ends)', async () => {
    const out = await child(backend, `
      // No 'error' listener: a fault given to nobody would throw ERR_UFFD_UNHANDLED_FAULT.
      u.serve(r, PageSource.custom(async (offset, length) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return Buffer.alloc(length, 0x0c);
      }, { size: 4 * PAGE }));
      const pending = r.read(0, 2 * PAGE);
      await new Promise((resolve) => setTimeout(resolve, 20));
      r.unmap();
      out.bytes = (await pending).every((b) => b === 0x0c);`);
    assert.strictEqual(out.bytes, true, JSON.stringify(out));
  });

  it('unmap() of a registered region: serve() of a new region at its address registers it (not taken as registered)', async () => {
    const out = await child(backend, `
      u.register(r);
      const address = r.address;
      r.unmap();
      const again = Region.map(4 * PAGE, { backend: '${backend}' });
      out.sameAddress = again.address === address;
      u.serve(again, PageSource.buffer(Buffer.alloc(4 * PAGE, 0x0f)));
      out.bytes = (await again.read(0, 4 * PAGE)).every((b) => b === 0x0f);
      again.unmap();`);
    assert.strictEqual(out.bytes, true, JSON.stringify(out));
  });
});
