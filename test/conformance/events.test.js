// Issue 3: kernel events delivered to JavaScript: page faults from the thread pool answered by
// a JS handler, non-cooperative events, the async iterator, close/unregister with faults
// pending, handler errors and faults nobody listens to.
const assert = require('assert');
const { Region } = require('../../dist');
const { describeBackends, requireFeature, pattern, delay, PAGE, perTestUffd } = require('../helpers');

/** Resolves with the next event of `type` on `emitter`. */
function next(emitter, type) {
  return new Promise((resolve) => emitter.once(type, resolve));
}

/** Resolves with the first `n` faults (not answered). */
function faults(uffd, n) {
  return new Promise((resolve) => {
    const seen = [];
    uffd.on('pagefault', function on(e) {
      seen.push(e);
      if (seen.length === n) { uffd.off('pagefault', on); resolve(seen); }
    });
  });
}

describeBackends('events: a JS handler answers thread-pool faults', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('a read answered by copy: event fields address, write=false, tid of a pool thread', async () => {
    const region = map(4);
    uffd.register(region);
    const seen = [];
    uffd.on('pagefault', (e) => { seen.push(e); uffd.copy(e.address, pattern(PAGE, 40)); });
    assert.deepStrictEqual(await region.read(2 * PAGE + 7, 100), pattern(PAGE, 40).subarray(7, 107));
    assert.strictEqual(seen.length, 1);
    const [e] = seen;
    assert.strictEqual(e.type, 'pagefault');
    assert.strictEqual(e.address, region.address + BigInt(2 * PAGE));
    assert.strictEqual(typeof e.address, 'bigint');
    assert.strictEqual(e.write, false);
    assert.strictEqual(e.wp, false);
    assert.strictEqual(e.minor, false);
    if (uffd.features.includes('THREAD_ID')) {
      assert.strictEqual(typeof e.tid, 'number');
      assert.ok(e.tid > 0);
      assert.notStrictEqual(e.tid, process.pid, 'a thread-pool thread, not the main thread');
    }
  });

  it('a write answered by zeropage: write=true, and the written bytes land on the zero page', async () => {
    const region = map(2);
    uffd.register(region);
    const seen = [];
    uffd.on('pagefault', (e) => { seen.push(e); uffd.zeropage({ start: e.address, length: PAGE }); });
    await region.write(PAGE + 10, Buffer.from([1, 2, 3]));
    assert.strictEqual(seen.length, 1);
    assert.strictEqual(seen[0].write, true);
    assert.strictEqual(seen[0].address, region.address + BigInt(PAGE));
    const expected = Buffer.alloc(PAGE);
    expected.set([1, 2, 3], 10);
    assert.deepStrictEqual(await region.read(PAGE, PAGE), expected);
  });

  it('with EXACT_ADDRESS the event carries the faulting byte\'s address', async function () {
    requireFeature(this, backend, 'EXACT_ADDRESS');
    const uffd = map.open({ features: ['EXACT_ADDRESS'] });
    const region = map(2);
    uffd.register(region);
    const seen = [];
    uffd.on('pagefault', (e) => {
      seen.push(e.address);
      uffd.copy(e.address - (e.address % BigInt(PAGE)), pattern(PAGE, 9));
    });
    assert.deepStrictEqual(await region.read(PAGE + 123, 1), pattern(PAGE, 9).subarray(123, 124));
    assert.deepStrictEqual(seen, [region.address + BigInt(PAGE + 123)]);
  });

  it('16 concurrent reads of distinct pages: 16 distinct events, each answered once', async () => {
    const region = map(16);
    uffd.register(region);
    const addresses = [];
    uffd.on('pagefault', (e) => {
      addresses.push(e.address);
      const i = Number(e.address - region.address) / PAGE;
      assert.strictEqual(uffd.copy(e.address, pattern(PAGE, i)), PAGE); // EEXIST would throw
    });
    const reads = [];
    for (let i = 0; i < 16; i++) reads.push(region.read(i * PAGE, PAGE));
    const results = await Promise.all(reads);
    for (let i = 0; i < 16; i++) assert.deepStrictEqual(results[i], pattern(PAGE, i), `page ${i}`);
    assert.strictEqual(addresses.length, 16);
    assert.strictEqual(new Set(addresses.map(String)).size, 16);
  });

  it('dontWake copies keep two reads waiting; one wake over the range releases both', async () => {
    const region = map(2);
    uffd.register(region);
    const pending = faults(uffd, 2);
    let finished = 0;
    const reads = [region.read(0, PAGE), region.read(PAGE, PAGE)].map((p) => p.then((b) => { finished++; return b; }));
    const seen = await pending;
    for (const e of seen) uffd.copy(e.address, pattern(PAGE, Number(e.address - region.address) / PAGE), { dontWake: true });
    await delay(50);
    assert.strictEqual(finished, 0, 'both reads still wait after dontWake copies');
    uffd.wake(region);
    const [a, b] = await Promise.all(reads);
    assert.deepStrictEqual(a, pattern(PAGE, 0));
    assert.deepStrictEqual(b, pattern(PAGE, 1));
  });

  it('write-protect faults have wp and write set, and un-protecting resolves them', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const region = map(2);
    uffd.register(region, { missing: true, wp: true });
    uffd.copy(region.address, pattern(2 * PAGE, 3), { wp: true });
    const seen = [];
    uffd.on('pagefault', (e) => {
      seen.push(e);
      uffd.writeProtect({ start: e.address, length: PAGE }, { protect: false });
    });
    await region.write(PAGE + 1, Buffer.from([0xab]));
    await region.write(0, Buffer.from([0xcd]));
    assert.strictEqual(seen.length, 2);
    for (const e of seen) { assert.strictEqual(e.wp, true); assert.strictEqual(e.write, true); assert.strictEqual(e.minor, false); }
    assert.deepStrictEqual(seen.map((e) => e.address), [region.address + BigInt(PAGE), region.address]);
    const expected = pattern(2 * PAGE, 3);
    expected[PAGE + 1] = 0xab;
    expected[0] = 0xcd;
    assert.deepStrictEqual(await region.read(0, 2 * PAGE), expected);
  });

  it('MINOR faults on a shared region filled through alias() are resolved by continue', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const uffd = map.open({ features: ['MINOR_SHMEM'] });
    const region = map(4, { shared: true });
    const alias = map.keep(region.alias());
    await alias.write(0, pattern(4 * PAGE, 50));
    uffd.register(region, { minor: true });
    const seen = [];
    uffd.on('pagefault', (e) => { seen.push(e); uffd.continue({ start: e.address, length: PAGE }); });
    assert.deepStrictEqual(await region.read(0, 4 * PAGE), pattern(4 * PAGE, 50));
    assert.strictEqual(seen.length, 4);
    for (const e of seen) { assert.strictEqual(e.minor, true); assert.strictEqual(e.wp, false); }
  });
});

describeBackends('events: non-cooperative events', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('dontneed() on the JS thread returns at once and a remove event carries the range', async function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    const uffd = map.open({ features: ['EVENT_REMOVE'] });
    const region = map(4);
    uffd.register(region);
    uffd.copy(region.address, pattern(4 * PAGE, 60));
    const removed = next(uffd, 'remove');
    region.dontneed(PAGE, 2 * PAGE); // blocks in the kernel until the reader reads the event
    const e = await removed;
    assert.strictEqual(e.type, 'remove');
    assert.strictEqual(e.start, region.address + BigInt(PAGE));
    assert.strictEqual(e.end, region.address + BigInt(3 * PAGE));
    // The dropped pages are missing again: they fault, the others do not.
    const seen = [];
    uffd.on('pagefault', (f) => { seen.push(f.address); uffd.zeropage({ start: f.address, length: PAGE }); });
    const all = await region.read(0, 4 * PAGE);
    assert.deepStrictEqual(all.subarray(0, PAGE), pattern(4 * PAGE, 60).subarray(0, PAGE));
    assert.deepStrictEqual(all.subarray(PAGE, 3 * PAGE), Buffer.alloc(2 * PAGE));
    assert.deepStrictEqual(seen, [region.address + BigInt(PAGE), region.address + BigInt(2 * PAGE)]);
  });

  it('unmap() on the JS thread returns at once and an unmap event carries the range', async function () {
    requireFeature(this, backend, 'EVENT_UNMAP');
    const uffd = map.open({ features: ['EVENT_UNMAP'] });
    const region = Region.map(3 * PAGE, { backend });
    const { address, length } = region;
    uffd.register(region);
    const unmapped = next(uffd, 'unmap');
    region.unmap();
    const e = await unmapped;
    assert.strictEqual(e.type, 'unmap');
    assert.strictEqual(e.start, address);
    assert.strictEqual(e.end, address + BigInt(length));
  });

  it('events() yields the same stream as the listeners, and ends at close()', async function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    const uffd = map.open({ features: ['EVENT_REMOVE'] });
    const region = map(2);
    uffd.register(region);
    const got = [];
    const consumer = (async () => {
      for await (const e of uffd.events()) {
        got.push(e);
        if (e.type === 'pagefault') uffd.copy(e.address, pattern(PAGE, 70));
        if (e.type === 'remove') uffd.close();
      }
      return 'ended';
    })();
    assert.deepStrictEqual(await region.read(PAGE, PAGE), pattern(PAGE, 70));
    region.dontneed(PAGE, PAGE);
    assert.strictEqual(await consumer, 'ended');
    assert.deepStrictEqual(got.map((e) => e.type), ['pagefault', 'remove']);
    assert.strictEqual(got[0].address, region.address + BigInt(PAGE));
    assert.strictEqual(got[1].start, region.address + BigInt(PAGE));
  });

  it('breaking out of events() stops that consumer; the listeners still get events', async () => {
    const region = map(2);
    uffd.register(region);
    const iterated = (async () => {
      for await (const e of uffd.events()) { uffd.copy(e.address, pattern(PAGE, 1)); return e.address; }
    })();
    await region.read(0, 1);
    assert.strictEqual(await iterated, region.address);
    uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 2)));
    assert.deepStrictEqual(await region.read(PAGE, PAGE), pattern(PAGE, 2));
  });
});

describeBackends('events: releasing waiting faults', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });
  it('close() with faults pending releases them: the reads resolve with zeros', async () => {
    const region = map(3);
    uffd.register(region);
    const pending = faults(uffd, 3);
    const reads = [0, 1, 2].map((i) => region.read(i * PAGE, PAGE));
    await pending;
    const closed = next(uffd, 'close');
    uffd.close();
    for (const b of await Promise.all(reads)) assert.deepStrictEqual(b, Buffer.alloc(PAGE));
    await closed;
    assert.strictEqual(uffd.closed, true);
    assert.strictEqual(uffd.fd, -1);
  });

  it('unregister() with a fault pending releases it: the read resolves with zeros', async () => {
    const region = map(2);
    uffd.register(region);
    const pending = faults(uffd, 1);
    const read = region.read(PAGE, PAGE);
    await pending;
    uffd.unregister(region);
    assert.deepStrictEqual(await read, Buffer.alloc(PAGE));
    // The uffd is still open and usable.
    assert.strictEqual(uffd.closed, false);
  });

  it('a handler that throws: an error event, and the fault is still answered (zero page)', async () => {
    const region = map(1);
    uffd.register(region);
    const errors = [];
    uffd.on('error', (err) => errors.push(err));
    uffd.on('pagefault', () => { throw new Error('handler bug'); });
    assert.deepStrictEqual(await region.read(0, PAGE), Buffer.alloc(PAGE));
    assert.strictEqual(errors.length, 1);
    assert.strictEqual(errors[0].message, 'handler bug');
    assert.strictEqual(errors[0].fault.address, region.address);
  });

  it('a handler that answers and then throws: an error event, the answer stands', async () => {
    const region = map(1);
    uffd.register(region);
    const errors = [];
    uffd.on('error', (err) => errors.push(err));
    uffd.on('pagefault', (e) => { uffd.copy(e.address, pattern(PAGE, 80)); throw new TypeError('late'); });
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 80));
    assert.strictEqual(errors.length, 1);
    assert.ok(errors[0] instanceof TypeError);
  });

  it('a page fault with no pagefault consumer: zero page and an ERR_UFFD_UNHANDLED_FAULT error', async function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    const uffd = map.open({ features: ['EVENT_REMOVE'] });
    const region = map(1);
    uffd.register(region);
    uffd.on('remove', () => {}); // the reader runs, but nobody handles page faults
    const error = next(uffd, 'error');
    assert.deepStrictEqual(await region.read(0, PAGE), Buffer.alloc(PAGE));
    const err = await error;
    assert.strictEqual(err.code, 'ERR_UFFD_UNHANDLED_FAULT');
    assert.strictEqual(err.fault.address, region.address);
  });

  it('removing the last pagefault listener hands later faults to the fallback', async () => {
    const region = map(2);
    uffd.register(region);
    const errors = [];
    uffd.on('error', (e) => errors.push(e.code));
    const h = (e) => uffd.copy(e.address, pattern(PAGE, 5));
    uffd.on('pagefault', h);
    assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 5));
    uffd.off('pagefault', h);
    assert.deepStrictEqual(await region.read(PAGE, PAGE), Buffer.alloc(PAGE));
    assert.deepStrictEqual(errors, ['ERR_UFFD_UNHANDLED_FAULT']);
  });
});
