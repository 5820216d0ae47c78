// Faults raised by region.read/write (off the JS thread) and how each answer lets them go on.
const assert = require('assert');
const { Userfaultfd } = require('../../dist');
const { at, pages, describeBackends, requireFeature, pattern, delay, PAGE, perTestUffd } = require('../helpers');


/** Resolves with the next 'pagefault' event. */
const nextFault = (uffd) => new Promise((resolve) => uffd.once('pagefault', resolve));

/** A promise's state without waiting for it. */
function track(p) {
  const t = { settled: false, value: undefined, error: undefined };
  t.done = p.then((v) => { t.settled = true; t.value = v; }, (e) => { t.settled = true; t.error = e; });
  return t;
}

describeBackends('faults: raised by read/write, answered by the handler', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('a read of a missing page raises a read fault at the page address, from another thread', async () => {
    const r = map(2);
    uffd.register(r);
    const fault = nextFault(uffd);
    const read = r.read(PAGE + 100, 10);
    const e = await fault;
    assert.strictEqual(e.type, 'pagefault');
    assert.strictEqual(e.address, at(r, 1));
    assert.deepStrictEqual([e.write, e.wp, e.minor, e.flags], [false, false, false, 0]);
    assert.strictEqual(typeof e.tid, 'number');
    assert.notStrictEqual(e.tid, process.pid);
    uffd.copy(e.address, pattern(PAGE, 2));
    assert.deepStrictEqual(await read, pattern(PAGE, 2).subarray(100, 110));
  });

  it('a write to a missing page raises a write fault; the write lands on the copied page', async () => {
    const r = map(1);
    uffd.register(r);
    const fault = nextFault(uffd);
    const write = r.write(8, Buffer.from([0xaa, 0xbb]));
    const e = await fault;
    assert.deepStrictEqual([e.write, e.wp, e.minor, e.flags], [true, false, false, 1]);
    uffd.copy(e.address, pattern(PAGE, 1));
    await write;
    const expected = pattern(PAGE, 1);
    expected[8] = 0xaa;
    expected[9] = 0xbb;
    assert.deepStrictEqual(await r.read(0, PAGE), expected);
  });

  it('a multi-page read faults once per missing page, in order', async () => {
    const r = map(3);
    uffd.register(r);
    uffd.copy(at(r, 1), pattern(PAGE, 5));
    const seen = [];
    uffd.on('pagefault', (e) => {
      seen.push(Number((e.address - r.address) / BigInt(PAGE)));
      uffd.copy(e.address, pattern(PAGE, seen.length));
    });
    const bytes = await r.read(0, 3 * PAGE);
    assert.deepStrictEqual(seen, [0, 2]);
    assert.deepStrictEqual(bytes.subarray(PAGE, 2 * PAGE), pattern(PAGE, 5));
  });

  it('copy with dontWake leaves the reader waiting until wake()', async () => {
    const r = map(1);
    uffd.register(r);
    const fault = nextFault(uffd);
    const read = track(r.read(0, 4));
    await fault;
    uffd.copy(r.address, pattern(PAGE, 3), { dontWake: true });
    await delay(50);
    assert.strictEqual(read.settled, false);
    uffd.wake(r);
    await read.done;
    assert.deepStrictEqual(read.value, pattern(PAGE, 3).subarray(0, 4));
  });

  it('wake() without resolving makes the thread fault again on the same page', async () => {
    const r = map(1);
    uffd.register(r);
    const read = r.read(0, 4);
    const first = await nextFault(uffd);
    const second = nextFault(uffd);
    uffd.wake(r);
    const again = await second;
    assert.strictEqual(again.address, first.address);
    uffd.zeropage(r);
    assert.deepStrictEqual([...await read], [0, 0, 0, 0]);
  });

  it('zeropage answers a fault with zeros', async () => {
    const r = map(1);
    uffd.register(r);
    uffd.on('pagefault', (e) => uffd.zeropage({ start: e.address, length: PAGE }));
    assert.deepStrictEqual(await r.read(0, PAGE), Buffer.alloc(PAGE));
  });

  it('a write to a write-protected page raises a wp fault; un-protecting lets it land', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const r = map(2);
    uffd.register(r, { missing: true, wp: true });
    uffd.copy(r.address, pattern(PAGE, 2), { wp: true });
    // Reading a protected page raises nothing.
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 2));
    const fault = nextFault(uffd);
    const write = track(r.write(4, Buffer.from([9])));
    const e = await fault;
    assert.deepStrictEqual([e.address, e.write, e.wp, e.minor, e.flags], [r.address, true, true, false, 3]);
    uffd.writeProtect(pages(r, 0, 1), { protect: false });
    await write.done;
    assert.strictEqual(write.error, undefined);
    assert.strictEqual((await r.read(4, 1))[0], 9);
  });

  it('un-protecting with dontWake leaves the writer waiting until wake()', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const r = map(1);
    uffd.register(r, { missing: true, wp: true });
    uffd.zeropage(r);
    uffd.writeProtect(r, { protect: true });
    const fault = nextFault(uffd);
    const write = track(r.write(0, Buffer.from([1])));
    await fault;
    uffd.writeProtect(r, { protect: false, dontWake: true });
    await delay(50);
    assert.strictEqual(write.settled, false);
    uffd.wake(r);
    await write.done;
    assert.strictEqual((await r.read(0, 1))[0], 1);
  });

  it('writeProtect on a missing page protects nothing: the write is a missing fault', async function () {
    requireFeature(this, backend, 'PAGEFAULT_FLAG_WP');
    const r = map(1);
    uffd.register(r, { missing: true, wp: true });
    uffd.writeProtect(r, { protect: true });
    const flags = [];
    uffd.on('pagefault', (e) => {
      flags.push(e.flags);
      uffd.copy(e.address, pattern(PAGE));
    });
    await r.write(0, Buffer.from([1]));
    assert.deepStrictEqual(flags, [1]);
  });

  it('shared memory keeps write protection on pages not mapped here, and across dontneed', async function () {
    requireFeature(this, backend, 'WP_HUGETLBFS_SHMEM');
    const r = map(2, { shared: true });
    const alias = r.alias();
    map.keep(alias);
    uffd.register(r, { missing: true, wp: true });
    const flags = [];
    uffd.on('pagefault', (e) => {
      flags.push(`${(e.address - r.address) / BigInt(PAGE)}:${e.flags}`);
      if (e.wp) uffd.writeProtect({ start: e.address, length: PAGE }, { protect: false });
      else uffd.copy(e.address, pattern(PAGE));
    });
    await alias.write(PAGE, Buffer.from([3])); // in the page cache, not mapped in r
    uffd.copy(r.address, pattern(PAGE, 5));
    uffd.writeProtect(r, { protect: true });
    r.dontneed(0, PAGE);
    await r.write(0, Buffer.from([1]));
    await r.write(PAGE, Buffer.from([2]));
    assert.deepStrictEqual(flags, ['0:3', '1:3']);
    assert.deepStrictEqual([(await alias.read(0, 1))[0], (await alias.read(PAGE, 1))[0]], [1, 2]);
  });

  it('a page in the page cache but not mapped here raises a minor fault; continue maps it', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const r = map(2, { shared: true });
    const alias = r.alias();
    map.keep(alias);
    uffd.register(r, { minor: true });
    await alias.write(0, pattern(PAGE, 7));
    const fault = nextFault(uffd);
    const read = r.read(0, PAGE);
    const e = await fault;
    assert.deepStrictEqual([e.address, e.write, e.wp, e.minor, e.flags], [r.address, false, false, true, 4]);
    uffd.continue({ start: e.address, length: PAGE });
    assert.deepStrictEqual(await read, pattern(PAGE, 7));
    // A page not in the page cache is allocated without a fault (no MISSING registration).
    assert.deepStrictEqual(await r.read(PAGE, 8), Buffer.alloc(8));
    // dontneed unmaps but keeps the page cache: the next touch is a minor fault again.
    r.dontneed(0, PAGE);
    const again = nextFault(uffd);
    const reread = r.read(0, 4);
    assert.strictEqual((await again).minor, true);
    uffd.continue(pages(r, 0, 1));
    assert.deepStrictEqual(await reread, pattern(PAGE, 7).subarray(0, 4));
  });

  it('a shared MISSING range keeps its page cache across dontneed (no new fault)', async () => {
    const r = map(1, { shared: true });
    uffd.register(r);
    let faults = 0;
    uffd.on('pagefault', (e) => {
      faults++;
      uffd.copy(e.address, pattern(PAGE, 3));
    });
    await r.read(0, 1);
    r.dontneed(0, PAGE);
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 3));
    assert.strictEqual(faults, 1);
  });

  it('after dontneed an anonymous page is missing again and faults again', async () => {
    const r = map(1);
    uffd.register(r);
    let faults = 0;
    uffd.on('pagefault', (e) => {
      faults++;
      uffd.copy(e.address, pattern(PAGE, faults));
    });
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 1));
    r.dontneed(0, PAGE);
    assert.strictEqual(r.residentPages(), 0);
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 2));
    assert.strictEqual(faults, 2);
  });

  it('close() lets a waiting read go on as an ordinary fault (zeros), and a write land', async () => {
    const r = map(2);
    uffd.register(r);
    let faults = 0;
    uffd.on('pagefault', () => { faults++; }); // never answered
    const read = r.read(0, 8);
    const write = r.write(PAGE, Buffer.from([5]));
    while (faults < 2) await delay(5);
    uffd.close();
    assert.deepStrictEqual([...await read], new Array(8).fill(0));
    await write;
    assert.strictEqual((await r.read(PAGE, 1))[0], 5);
  });

  it('unregister() lets a waiting read go on as an ordinary fault (zeros)', async () => {
    const r = map(1);
    uffd.register(r);
    const fault = nextFault(uffd);
    const read = r.read(0, 8);
    await fault;
    uffd.unregister(r);
    assert.deepStrictEqual([...await read], new Array(8).fill(0));
  });

  it('unregistered memory is ordinary memory: zero-filled, no fault', async () => {
    const r = map(2);
    uffd.register(pages(r, 0, 1));
    uffd.on('pagefault', () => assert.fail('no fault expected'));
    await r.write(PAGE + 1, Buffer.from([3]));
    assert.deepStrictEqual([...await r.read(PAGE, 3)], [0, 3, 0]);
  });

  it('a handler that throws: the fault is answered with zeros and reported as an error event', async () => {
    const r = map(1);
    uffd.register(r);
    const errors = [];
    uffd.on('error', (e) => errors.push(e));
    uffd.on('pagefault', () => { throw new Error('handler failed'); });
    assert.deepStrictEqual([...await r.read(0, 4)], [0, 0, 0, 0]);
    assert.strictEqual(errors.length, 1);
    assert.strictEqual(errors[0].message, 'handler failed');
    assert.strictEqual(errors[0].fault.address, r.address);
  });

  it('with no pagefault consumer, a fault read by the reader is answered with zeros plus an error event', async function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    uffd.close();
    uffd = map.closeAfter(Userfaultfd.open({ backend, features: ['EVENT_REMOVE'] }));
    const r = map(1);
    uffd.register(r);
    const errors = [];
    uffd.on('error', (e) => errors.push(e));
    uffd.on('remove', () => undefined); // starts the reader, consumes no faults
    assert.deepStrictEqual([...await r.read(0, 4)], [0, 0, 0, 0]);
    assert.strictEqual(errors.length, 1);
    assert.strictEqual(errors[0].code, 'ERR_UFFD_UNHANDLED_FAULT');
  });

  it('events() yields the faults as an async iterator', async () => {
    const r = map(2);
    uffd.register(r);
    const read = r.read(0, 2 * PAGE);
    const seen = [];
    for await (const e of uffd.events()) {
      seen.push(e.address);
      uffd.copy(e.address, pattern(PAGE, seen.length));
      if (seen.length === 2) break;
    }
    assert.deepStrictEqual(seen, [r.address, at(r, 1)]);
    const bytes = await read;
    assert.deepStrictEqual(bytes.subarray(PAGE), pattern(PAGE, 2));
  });

  it('faults raised before the reader starts are delivered when it starts', async () => {
    const r = map(1);
    uffd.register(r);
    const read = r.read(0, 4);
    await delay(20);
    uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 6)));
    assert.deepStrictEqual(await read, pattern(PAGE, 6).subarray(0, 4));
  });

  it('two reads of one page: one is answered, the other sees EEXIST and is woken', async () => {
    const r = map(1);
    uffd.register(r);
    let answered = 0;
    let eexist = 0;
    uffd.on('pagefault', (e) => {
      try {
        uffd.copy(e.address, pattern(PAGE, 2));
        answered++;
      } catch (err) {
        if (err.code !== 'EEXIST') throw err;
        eexist++;
        uffd.wake({ start: e.address, length: PAGE });
      }
    });
    const [a, b] = await Promise.all([r.read(0, 4), r.read(0, 4)]);
    assert.deepStrictEqual(a, pattern(PAGE, 2).subarray(0, 4));
    assert.deepStrictEqual(b, a);
    assert.strictEqual(answered, 1);
    // The second read faults only if it came before the answer: then its copy is EEXIST, once.
    assert.ok(eexist <= 1, `${eexist} EEXIST answers for one page`);
  });
});

describeBackends('faults: accesses run on the thread pool', (backend) => {
  it('with UV_THREADPOOL_SIZE=2, a third access waits for a thread: two faults, then the third', async () => {
    const { runChild } = require('../helpers');
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const backend = ${JSON.stringify(backend)};
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(3 * ${PAGE}, { backend });
      uffd.register(region);
      const faults = [];
      uffd.on('pagefault', (e) => faults.push(e));
      const reads = [0, 1, 2].map((i) => region.read(i * ${PAGE}, 1));
      setTimeout(async () => {
        const first = faults.length;
        const tids = new Set(faults.map((f) => f.tid)).size;
        uffd.zeropage(region);
        await Promise.all(reads);
        console.log(JSON.stringify({ first, tids, total: faults.length }));
        uffd.close();
        region.unmap();
      }, 200);`, { env: { UV_THREADPOOL_SIZE: '2' } });
    assert.deepStrictEqual([r.code, r.signal, r.timedOut], [0, null, false], r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), { first: 2, tids: 2, total: 2 });
  });
});
