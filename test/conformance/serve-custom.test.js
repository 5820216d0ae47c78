// PageSource.custom: faults answered from an async read, on both backends. Faults are raised
// with region.read (the thread pool), never by the JS thread that runs read().
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource, readWorkingSet } = require('../../dist');
const { describeBackends, pattern, delay, PAGE, perTestUffd, requireFeature } = require('../helpers');

/** A promise with its resolve/reject outside. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Waits (bounded) until `cond()` holds; the test then asserts what it needs. */
async function until(cond, tries = 2000) {
  for (let i = 0; i < tries && !cond(); i++) await delay(5);
}

/** The next 'error' event of `uffd`. */
const nextError = (uffd) => new Promise((resolve) => uffd.once('error', resolve));

describeBackends('serve: PageSource.custom', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('bytes as read, zeros past the size, no pagefault event; reads are chunkSize windows', async () => {
    const r = map(12);
    const data = pattern(5 * PAGE + 123, 3);
    const calls = [];
    uffd.on('pagefault', () => assert.fail('a custom source answers its faults itself'));
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls.push([offset, length]);
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 4 * PAGE }));
    const bytes = await r.read(0, 12 * PAGE);
    assert.deepStrictEqual(bytes.subarray(0, data.length), data);
    assert.deepStrictEqual(bytes.subarray(data.length), Buffer.alloc(12 * PAGE - data.length));
    assert.deepStrictEqual(calls, [[0, 4 * PAGE], [4 * PAGE, data.length - 4 * PAGE]]);
    const s = uffd.stats().source;
    assert.strictEqual(s.reads, 2);
    assert.strictEqual(s.bytesRead, data.length);
  });

  it('concurrent faults on one window share one read(), counted as deduplicated', async () => {
    const r = map(16);
    const data = pattern(16 * PAGE, 5);
    const gate = deferred();
    let calls = 0;
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls++;
      await gate.promise;
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 16 * PAGE }));
    const reads = Array.from({ length: 16 }, (_, p) => r.read(p * PAGE, PAGE));
    // The thread pool has 4 threads: at least 4 faults wait on the window at once.
    await until(() => uffd.stats().source.deduplicated >= 3);
    gate.resolve();
    const got = await Promise.all(reads);
    assert.deepStrictEqual(Buffer.concat(got), data);
    assert.strictEqual(calls, 1);
    assert.ok(uffd.stats().source.deduplicated >= 3, JSON.stringify(uffd.stats().source));
  });

  it('reads in flight never exceed concurrency', async () => {
    const r = map(8);
    const data = pattern(8 * PAGE, 7);
    let inFlight = 0;
    let most = 0;
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      most = Math.max(most, ++inFlight);
      await delay(20);
      inFlight--;
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: PAGE, concurrency: 2 }));
    const got = await Promise.all(Array.from({ length: 8 }, (_, p) => r.read(p * PAGE, PAGE)));
    assert.deepStrictEqual(Buffer.concat(got), data);
    assert.ok(most <= 2 && most >= 1, `at most 2 in flight, saw ${most}`);
    assert.ok(uffd.stats().source.maxInFlight <= 2);
  });

  it('a failing read is retried with backoff, then its bytes served', async () => {
    const r = map(2);
    const data = pattern(2 * PAGE, 9);
    let calls = 0;
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      if (++calls <= 2) throw new Error('transient');
      return data.subarray(offset, offset + length);
    }, { size: data.length, retries: 3, retryDelayMs: 1 }));
    assert.deepStrictEqual(await r.read(0, 2 * PAGE), data);
    assert.strictEqual(calls, 3);
    assert.strictEqual(uffd.stats().source.retries, 2);
  });

  it("onError 'zeropage': a read that always fails gives zeros and an 'error' naming the bytes and cause", async () => {
    const r = map(4);
    let calls = 0;
    uffd.serve(r, PageSource.custom(async () => {
      calls++;
      throw new Error('bucket on fire');
    }, { size: 4 * PAGE, chunkSize: 2 * PAGE, retries: 2, retryDelayMs: 1, onError: 'zeropage' }));
    const error = nextError(uffd);
    assert.deepStrictEqual(await r.read(2 * PAGE, PAGE), Buffer.alloc(PAGE));
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_READ');
    assert.strictEqual(e.offset, 2 * PAGE);
    assert.strictEqual(e.length, 2 * PAGE);
    assert.strictEqual(e.start, r.address + BigInt(2 * PAGE));
    assert.strictEqual(e.answeredWith, 'zeropage');
    assert.strictEqual(e.cause.message, 'bucket on fire');
    assert.match(e.message, new RegExp(`bytes ${2 * PAGE}-${4 * PAGE - 1}`));
    assert.strictEqual(calls, 3);
    assert.strictEqual(uffd.stats().source.failures, 1);
  });

  it("onError 'sigbus' (default): the failed page is poisoned; region.read rejects with SIGBUS", async function () {
    requireFeature(this, backend, 'POISON');
    const r = map(2);
    uffd.serve(r, PageSource.custom(async () => { throw new Error('gone'); }, { size: 2 * PAGE, retries: 0 }));
    const error = nextError(uffd);
    await assert.rejects(r.read(0, PAGE), { code: 'SIGBUS' });
    const e = await error;
    assert.strictEqual(e.answeredWith, 'sigbus');
  });

  it('a read that never settles is aborted after timeoutMs: the fault is answered, not left hanging', async () => {
    const r = map(1);
    const signals = [];
    uffd.serve(r, PageSource.custom((offset, length, { signal }) => {
      signals.push(signal);
      return new Promise(() => {}); // never settles
    }, { size: PAGE, timeoutMs: 30, retries: 1, retryDelayMs: 1, onError: 'zeropage' }));
    const error = nextError(uffd);
    assert.deepStrictEqual(await r.read(0, PAGE), Buffer.alloc(PAGE));
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_TIMEOUT');
    assert.strictEqual(signals.length, 2);
    assert.ok(signals.every((s) => s.aborted), 'each timed-out attempt is aborted');
    assert.strictEqual(uffd.stats().source.timeouts, 2);
  });

  it('a short read is retried, then fails with ERR_UFFD_SOURCE_SHORT_READ', async () => {
    const r = map(1);
    uffd.serve(r, PageSource.custom(async () => new Uint8Array(10), { size: PAGE, retries: 1, retryDelayMs: 1, onError: 'zeropage' }));
    const error = nextError(uffd);
    await r.read(0, PAGE);
    assert.strictEqual((await error).code, 'ERR_UFFD_SOURCE_SHORT_READ');
  });

  it('readahead smaller than the window: the rest of the window is cached, not read again', async () => {
    const r = map(8);
    const data = pattern(8 * PAGE, 11);
    let calls = 0;
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls++;
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 8 * PAGE }), { readahead: false });
    for (let p = 0; p < 8; p++) assert.deepStrictEqual(await r.read(p * PAGE, PAGE), data.subarray(p * PAGE, (p + 1) * PAGE));
    assert.strictEqual(calls, 1);
    const s = uffd.stats().source;
    assert.strictEqual(s.cacheHits, 7);
    assert.strictEqual(s.faults, 8);
  });

  it('a sequential reader: the next windows are read ahead while it waits, none twice', async () => {
    const r = map(16);
    const data = pattern(16 * PAGE, 17);
    const calls = [];
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls.push(offset / (2 * PAGE));
      if (offset === 2 * PAGE) await until(() => calls.length >= 5); // window 1 waits for the read-ahead
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 2 * PAGE, concurrency: 4 }));
    await r.read(0, PAGE);
    await r.read(2 * PAGE, PAGE); // the window after the last one: sequential
    assert.deepStrictEqual([...calls].sort(), [0, 1, 2, 3, 4]);
    assert.deepStrictEqual(await r.read(0, 16 * PAGE), data);
    assert.strictEqual(new Set(calls).size, calls.length, `no window read twice: ${calls}`);
  });

  it('a window a fault waits on is read before windows only read ahead', async () => {
    const r = map(24);
    const data = pattern(24 * PAGE, 29);
    const calls = [];
    const gates = new Map();
    const gate = (i) => {
      if (!gates.has(i)) gates.set(i, deferred());
      return gates.get(i);
    };
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      const i = offset / (2 * PAGE);
      calls.push(i);
      await gate(i).promise;
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 2 * PAGE, concurrency: 3 }));
    const held = r.read(10 * PAGE, 1); // window 5: holds a slot
    await until(() => calls.includes(5));
    gate(0).resolve();
    await r.read(0, 1);
    const seq = r.read(2 * PAGE, 1); // window 1 after window 0: windows 2 and 3 read ahead
    await until(() => calls.includes(2)); // slots: 5, 1, 2; window 3 waits
    const far = [r.read(18 * PAGE, 1), r.read(19 * PAGE, 1)]; // two faults on window 9
    await until(() => uffd.stats().source.deduplicated >= 1);
    gate(5).resolve();
    await until(() => calls.includes(9) || calls.includes(3));
    assert.ok(calls.includes(9) && !calls.includes(3), `window 9 before read-ahead window 3: ${calls}`);
    for (let i = 0; i < 12; i++) gate(i).resolve();
    await Promise.all([held, seq, ...far]);
    assert.deepStrictEqual(await r.read(0, 24 * PAGE), data);
  });

  it('a read-ahead that fails is dropped quietly; a fault on its window reads it again', async () => {
    const r = map(8);
    const data = pattern(8 * PAGE, 23);
    const calls = [];
    const errors = [];
    let failed = false;
    uffd.on('error', (e) => errors.push(e));
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls.push(offset / (2 * PAGE));
      if (offset === 4 * PAGE && !failed) {
        failed = true;
        throw new Error('flaky');
      }
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 2 * PAGE, concurrency: 2, retries: 0 }));
    await r.read(0, PAGE);
    await r.read(2 * PAGE, PAGE); // sequential: window 2 is read ahead, and fails
    await until(() => failed && uffd.stats().source.inFlight === 0);
    assert.deepStrictEqual(await r.read(0, 8 * PAGE), data);
    assert.deepStrictEqual(errors, []);
    assert.strictEqual(calls.filter((c) => c === 2).length, 2, `window 2 read twice: ${calls}`);
  });

  it('a page dropped after its window was copied is read from the source again, not zeros', async () => {
    const r = map(4);
    const data = pattern(4 * PAGE, 19);
    let calls = 0;
    uffd.serve(r, PageSource.custom(async (offset, length) => {
      calls++;
      return data.subarray(offset, offset + length);
    }, { size: data.length, chunkSize: 4 * PAGE }));
    assert.deepStrictEqual(await r.read(0, 4 * PAGE), data);
    r.dontneed(PAGE, PAGE);
    assert.deepStrictEqual(await r.read(PAGE, PAGE), data.subarray(PAGE, 2 * PAGE));
    assert.strictEqual(calls, 2);
  });

  it('stop() hands the faults still waiting to the pagefault handlers', async () => {
    const r = map(1);
    const served = uffd.serve(r, PageSource.custom(() => new Promise(() => {}), { size: PAGE }));
    uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(PAGE, 0x5a)));
    const read = r.read(0, PAGE);
    await until(() => uffd.stats().source.inFlight === 1);
    served.stop();
    assert.deepStrictEqual(await read, Buffer.alloc(PAGE, 0x5a));
  });

  it('serve({ record }): the first touches are recorded as with native sources; prefetch is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-custom-ws-'));
    try {
      const r = map(16);
      const data = pattern(16 * PAGE, 31);
      const file = path.join(dir, 'set.bin');
      const source = PageSource.custom(async (offset, length) => data.subarray(offset, offset + length),
        { size: data.length, chunkSize: 8 * PAGE });
      const served = uffd.serve(r, source, { record: file });
      assert.deepStrictEqual(await r.read(9 * PAGE, 2 * PAGE), data.subarray(9 * PAGE, 11 * PAGE));
      await r.write(3 * PAGE, Buffer.alloc(PAGE, 1));
      assert.deepStrictEqual(await r.read(4 * PAGE, PAGE), data.subarray(4 * PAGE, 5 * PAGE));
      served.stop(); // saves the set
      const set = readWorkingSet(file);
      assert.deepStrictEqual(set.runs.map((x) => [x.first, x.count, x.write]), [[9, 2, false], [3, 1, true], [4, 1, false]]);
      assert.strictEqual(uffd.stats().source.reads, 2, 'one page per fault is copied; the windows stay cached');
      const r2 = map(16);
      assert.throws(() => uffd.serve(r2, source, { prefetch: file }), { code: 'ERR_UFFD_PREFETCH_UNSUPPORTED' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad arguments throw before anything is served', () => {
    const r = map(1);
    const read = async () => new Uint8Array(PAGE);
    assert.throws(() => PageSource.custom('nope', { size: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.custom(read), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.custom(read, { size: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.custom(read, { size: 1, chunkSize: 100 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.custom(read, { size: 1, concurrency: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => PageSource.custom(read, { size: 1, onError: 'ignore' }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => uffd.serve(r, PageSource.custom(read, { size: 1 }), { removed: 'zero' }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.http('ftp://example.invalid/x'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => PageSource.http('http://127.0.0.1/x', { headers: 5 }), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
