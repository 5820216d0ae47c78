// uffd.readSync(): the calling thread reads its uffd itself (docs/fast-handlers.md).
// On the kernel it blocks until a message is queued; the simulator returns what is queued.
// Here the faults come from region.read (the thread pool), so waiting is safe on both.
const assert = require('assert');
const { Userfaultfd, PageSource } = require('../../dist');
const { describeBackends, perTestUffd, pattern, PAGE } = require('../helpers');

/** readSync until `n` events have come (a few ms per try on the kernel, none on the simulator). */
async function readEvents(uffd, n, max) {
  const seen = [];
  for (let tries = 0; tries < 400 && seen.length < n; tries++) {
    const got = uffd.readSync({ max, timeoutMs: uffd.backend === 'native' ? 20 : 0 });
    if (max !== undefined) assert.ok(got.length <= max, `readSync({ max: ${max} }) returned ${got.length} events`);
    seen.push(...got);
    if (got.length === 0) await new Promise((r) => setImmediate(r));
  }
  return seen;
}

describeBackends('readSync', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('returns the pending fault, decoded; copy() answers it and the read sees the bytes', async () => {
    const region = map(2);
    uffd.register(region);
    const reading = region.read(PAGE, PAGE);
    const [e, ...rest] = await readEvents(uffd, 1);
    assert.deepStrictEqual(rest, []);
    assert.strictEqual(e.type, 'pagefault');
    assert.strictEqual(e.address, region.address + BigInt(PAGE));
    assert.strictEqual(e.write, false);
    assert.strictEqual(e.wp, false);
    assert.strictEqual(e.minor, false);
    const data = pattern(PAGE, 5);
    assert.strictEqual(uffd.copy(e.address, data), PAGE);
    assert.deepStrictEqual(await reading, data);
    assert.strictEqual(uffd.stats().faults, 1);
  });

  it('returns at most `max` events per call, oldest first, and every fault once', async () => {
    const region = map(3);
    uffd.register(region);
    const reads = [0, 1, 2].map((i) => region.write(i * PAGE, pattern(PAGE, i)));
    const events = await readEvents(uffd, 3, 1);
    const pages = events.map((e) => Number(e.address - region.address) / PAGE).sort();
    assert.deepStrictEqual(pages, [0, 1, 2]);
    for (const e of events) assert.strictEqual(e.write, true);
    for (const e of events) uffd.zeropage({ start: e.address, length: PAGE });
    await Promise.all(reads);
    assert.deepStrictEqual(Buffer.from(await region.read(0, 3 * PAGE)), Buffer.concat([0, 1, 2].map((i) => pattern(PAGE, i))));
  });

  it('returns [] when nothing is queued and timeoutMs is 0', () => {
    uffd.register(map(1));
    assert.deepStrictEqual(uffd.readSync({ timeoutMs: 0 }), []);
  });

  it('throws ERR_UFFD_READER_ACTIVE once a listener has started the reader thread', () => {
    uffd.register(map(1));
    uffd.on('pagefault', () => {});
    assert.throws(() => uffd.readSync({ timeoutMs: 0 }), { code: 'ERR_UFFD_READER_ACTIVE' });
  });

  it('throws ERR_UFFD_READER_ACTIVE while serve() answers a range', () => {
    const region = map(1);
    uffd.serve(region, PageSource.zero());
    assert.throws(() => uffd.readSync({ timeoutMs: 0 }), { code: 'ERR_UFFD_READER_ACTIVE' });
  });

  it('throws ERR_UFFD_READER_ACTIVE while events() is iterated', () => {
    uffd.register(map(1));
    const it = uffd.events();
    assert.throws(() => uffd.readSync({ timeoutMs: 0 }), { code: 'ERR_UFFD_READER_ACTIVE' });
    it.return();
  });

  it('throws the closed error after close()', () => {
    const u = Userfaultfd.open({ backend });
    u.close();
    assert.throws(() => u.readSync({ timeoutMs: 0 }), { name: 'Error', code: 'ERR_UFFD_CLOSED', message: /closed/ });
  });

  it('refuses bad options before reading', () => {
    uffd.register(map(1));
    for (const bad of [null, 5, 'x']) assert.throws(() => uffd.readSync(bad), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => uffd.readSync({ max: '2' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => uffd.readSync({ timeoutMs: 10n }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    for (const max of [0, -1, 1.5, 1025, NaN]) {
      assert.throws(() => uffd.readSync({ max, timeoutMs: 0 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `max ${max}`);
    }
    for (const timeoutMs of [-2, 0.5, 2 ** 31, Infinity, NaN]) {
      assert.throws(() => uffd.readSync({ timeoutMs }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `timeoutMs ${timeoutMs}`);
    }
  });

  it('leaves the events to listeners added later: the reader starts then', async () => {
    const region = map(1);
    uffd.register(region);
    assert.deepStrictEqual(uffd.readSync({ timeoutMs: 0 }), []);
    uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 9)));
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 9));
  });
});
