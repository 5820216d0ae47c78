// Features whose effect both backends must show the same way: SIGBUS (every userfault becomes
// a SIGBUS, as in the kernel's sigbus and sigbus-wp selftests), WP_UNPOPULATED, and pages
// written through region.buffer before registration. Then the kernel selftests' sigbus and
// events cases (tools/testing/selftests/mm/uffd-unit-tests.c), opened with the features they
// ask for, EVENT_FORK and EVENT_REMAP included: the simulator accepts those (their events never
// occur there), so code written for the kernel runs on it unchanged.
const assert = require('assert');
const { PageSource } = require('../../dist');
const {
  describeBackends, requireFeature, requirePrivileged, pattern, pages, PAGE, perTestUffd, runUffdChild,
} = require('../helpers');

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

  // Each in a child with a deadline: a fault left unanswered fails the case, not the run.
  describe("the kernel's uffd-unit-tests, with the features they open", function () {
    this.timeout(30000);
    const NR = 8;
    /** runUffdChild with `u` opened with `features`, `r` (NR pages) registered, `data` and helpers. */
    const selftest = (features, body) => runUffdChild(backend, `
      const NR = ${NR};
      u.register(r);
      const data = Buffer.alloc(NR * PAGE);
      for (let i = 0; i < data.length; i++) data[i] = (Math.floor(i / PAGE) * 31 + i) & 0xff;
      const page = (p) => data.subarray(p * PAGE, (p + 1) * PAGE);
      const at = (p) => r.address + BigInt(p * PAGE);
      const sigbus = (promise) => promise.then(() => 'resolved', (e) => e.code);
      ${body}`, { open: { features }, pages: NR, timeoutMs: 20000 });

    it('sigbus (SIGBUS | EVENT_FORK): each missing page raises SIGBUS until copied, again once released; no event', async function () {
      requireFeature(this, backend, 'SIGBUS');
      if (backend === 'native') requirePrivileged(this, 'EVENT_FORK', 'ptrace');
      const out = await selftest(['SIGBUS', 'EVENT_FORK'], `
        const events = [];
        for (const type of ['pagefault', 'fork']) u.on(type, (e) => events.push(e.type));
        out.first = [];
        out.copied = [];
        for (let p = 0; p < NR; p++) {
          out.first.push(await sigbus(r.read(p * PAGE, 8)));
          u.copy(at(p), page(p));
          out.copied.push((await r.read(p * PAGE, PAGE)).equals(page(p)));
        }
        r.dontneed(0, NR * PAGE); // release_pages
        out.released = [];
        for (let p = 0; p < NR; p++) out.released.push(await sigbus(r.read(p * PAGE, 1)));
        out.events = events;`);
      assert.deepStrictEqual(out.first, Array(NR).fill('SIGBUS'), JSON.stringify(out));
      assert.deepStrictEqual(out.copied, Array(NR).fill(true));
      assert.deepStrictEqual(out.released, Array(NR).fill('SIGBUS'));
      assert.deepStrictEqual(out.events, []);
    });

    it('events (EVENT_FORK | EVENT_REMAP | EVENT_REMOVE): every page faults once and is served; a release is a remove event', async function () {
      if (backend === 'native') requirePrivileged(this, 'EVENT_FORK', 'ptrace');
      const out = await selftest(['EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE'], `
        let missingFaults = 0;
        u.on('pagefault', (e) => {
          missingFaults++;
          const p = Number((e.address - r.address) / BigInt(PAGE));
          u.copy(at(p), page(p));
        });
        const removes = [];
        // As the selftest's monitor does: a removed range is unregistered, so it reads zeros.
        u.on('remove', (e) => {
          removes.push([e.start === r.address, Number(e.end - e.start)]);
          u.unregister({ start: e.start, length: Number(e.end - e.start) });
        });
        out.served = (await r.read(0, NR * PAGE)).equals(data);
        out.faults = missingFaults;
        r.dontneed(0, NR * PAGE);
        for (let i = 0; i < 200 && removes.length === 0; i++) await new Promise((res) => setTimeout(res, 5));
        out.removes = removes;
        out.zeros = (await r.read(0, NR * PAGE)).every((b) => b === 0);
        out.faultsAfter = missingFaults;`);
      assert.deepStrictEqual(out, { served: true, faults: NR, removes: [[true, NR * PAGE]], zeros: true, faultsAfter: NR });
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
