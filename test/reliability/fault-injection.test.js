// Fault injection: handlers that throw or never answer, a uffd closed under waiting threads,
// EAGAIN from a non-cooperative event racing a copy, ESRCH once the memory's owner is gone.
// None of them may hang: every case is bounded by mocha's timeout and closes in `finally`.
const assert = require('assert');
const { Worker } = require('worker_threads');
const { spawn } = require('child_process');
const path = require('path');
const { Userfaultfd, Region, UffdError } = require('../../dist');
const { PAGE, pattern, delay, runChild, requirePrivileged, describeNative, perTestUffd, scaled } = require('../helpers');

const DIST = path.resolve(__dirname, '../../dist');

describeNative('reliability: fault injection', function () {
  this.timeout(scaled(20000));
  const map = perTestUffd('native');

  describe('a handler that throws', () => {
    it("emits 'error' with the fault, and the fault is answered by the fallback (zero page)", async () => {
      const uffd = map.open();
      const region = map(4);
      uffd.register(region);
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      uffd.on('pagefault', () => { throw new Error('handler bug'); });
      const bytes = await region.read(PAGE, 64);
      assert.ok(bytes.equals(Buffer.alloc(64)));
      assert.strictEqual(errors.length, 1);
      assert.strictEqual(errors[0].message, 'handler bug');
      assert.strictEqual(errors[0].fault.address, region.address + BigInt(PAGE));
    });

    it('a write-protect fault whose handler throws is un-protected, and the write lands', async () => {
      const uffd = map.open();
      const region = map(2);
      await region.write(0, pattern(2 * PAGE, 3)); // populated before registering
      uffd.register(region, { wp: true });
      uffd.writeProtect(region, { protect: true });
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      uffd.on('pagefault', () => { throw new Error('wp handler bug'); });
      await region.write(PAGE + 10, Buffer.from([0xab]));
      assert.strictEqual((await region.read(PAGE + 10, 1))[0], 0xab);
      assert.strictEqual(errors.length, 1);
      assert.strictEqual(errors[0].fault.wp, true);
    });

    it("with no 'error' listener the thrown error is uncaught: the process dies of it, it does not hang", async () => {
      const r = await runChild(`
        const { Userfaultfd, Region } = require('./dist');
        const uffd = Userfaultfd.open({ backend: 'native' });
        const region = Region.map(${PAGE}, { backend: 'native' });
        uffd.register(region);
        uffd.on('pagefault', () => { throw new Error('nobody listens for errors'); });
        region.read(0, 8).then(() => console.log('read answered'));`, { timeoutMs: 15000 });
      assert.strictEqual(r.timedOut, false, r.stderr);
      assert.strictEqual(r.code, 1, r.stderr);
      assert.match(r.stderr, /nobody listens for errors/);
    });
  });

  describe('a handler that never answers: faultTimeoutMs', () => {
    it('answers by the fallback and emits ERR_UFFD_FAULT_TIMEOUT', async () => {
      const uffd = map.open({ faultTimeoutMs: 30 });
      const region = map(4);
      uffd.register(region);
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      uffd.on('pagefault', () => {}); // forgets to answer
      const bytes = await region.read(2 * PAGE, 16);
      assert.ok(bytes.equals(Buffer.alloc(16)));
      assert.strictEqual(errors.length, 1);
      assert.strictEqual(errors[0].code, 'ERR_UFFD_FAULT_TIMEOUT');
      assert.strictEqual(errors[0].fault.address, region.address + BigInt(2 * PAGE));
    });

    it('covers events() consumers and write-protect faults too', async () => {
      const uffd = map.open({ faultTimeoutMs: 20 });
      const region = map(2);
      await region.write(0, pattern(2 * PAGE, 5));
      uffd.register(region, { wp: true });
      uffd.writeProtect(region, { protect: true });
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      const seen = [];
      const it = uffd.events();
      const consumer = (async () => { for await (const e of it) seen.push(e); })();
      await region.write(0, Buffer.from([7]));
      assert.strictEqual((await region.read(0, 1))[0], 7);
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(seen[0].wp, true);
      assert.deepStrictEqual(errors.map((e) => e.code), ['ERR_UFFD_FAULT_TIMEOUT']);
      uffd.close();
      await consumer;
    });

    it('does not fire for faults that were answered (copy, or EEXIST + wake)', async () => {
      const uffd = map.open({ faultTimeoutMs: 30 });
      const region = map(8);
      uffd.register(region);
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      uffd.on('pagefault', (e) => {
        try {
          uffd.copy(e.address, pattern(PAGE, 1));
        } catch (err) {
          if (err.code !== 'EEXIST') throw err;
          uffd.wake({ start: e.address, length: PAGE });
        }
      });
      // Racing reads of the same pages: some faults are answered by EEXIST + wake.
      await Promise.all([0, 0, 1, 1, 2, 3, 3, 3].map((p) => region.read(p * PAGE, 8)));
      await delay(150); // several timeouts' worth: nothing may fire
      assert.deepStrictEqual(errors, []);
    });

    it('refuses a bad faultTimeoutMs before opening anything', () => {
      for (const bad of [0, -1, NaN, Infinity, 2 ** 31]) {
        assert.throws(() => Userfaultfd.open({ backend: 'native', faultTimeoutMs: bad }), { code: 'ERR_OUT_OF_RANGE' });
      }
      for (const bad of ['10', 10n, null, {}]) {
        assert.throws(() => Userfaultfd.open({ backend: 'native', faultTimeoutMs: bad }), { code: 'ERR_INVALID_ARG_TYPE' });
      }
    });
  });

  it('closing the uffd with faults pending releases every waiting thread', async () => {
    const uffd = map.open();
    const region = map(8);
    uffd.register(region);
    let faults = 0;
    uffd.on('pagefault', () => { faults++; if (faults === 4) setImmediate(() => uffd.close()); }); // never answered
    const reads = [0, 1, 2, 3].map((p) => region.read(p * PAGE, 32));
    const results = await Promise.all(reads);
    for (const b of results) assert.ok(b.equals(Buffer.alloc(32)));
    assert.strictEqual(faults, 4);
    await region.write(5 * PAGE, Buffer.from([9])); // no longer registered: plain memory
    assert.strictEqual((await region.read(5 * PAGE, 1))[0], 9);
  });

  it('a Region unmapped while a write from a view of it waits on a fault stays mapped until the copy ends', async () => {
    const uffd = map.open();
    const region = map(4);
    const other = Region.map(4 * PAGE, { backend: 'native' });
    new Uint8Array(other.buffer).fill(7);
    uffd.register(region);
    const faulted = new Promise((resolve) => uffd.on('pagefault', resolve)); // answered below
    const write = region.write(0, new Uint8Array(other.buffer));
    const e = await faulted;
    other.unmap(); // the thread-pool copy still reads it: the munmap waits for the copy
    assert.strictEqual(other.buffer.byteLength, 0);
    uffd.zeropage({ start: e.address, length: 4 * PAGE });
    await write;
    assert.ok((await region.read(0, 4 * PAGE)).equals(Buffer.alloc(4 * PAGE, 7)));
  });

  it('a write from a view of a protected Region fails with EFAULT instead of killing the process', async () => {
    const region = map(2);
    const other = Region.map(2 * PAGE, { backend: 'native' });
    try {
      other.protect(0, PAGE, 'none');
      assert.throws(() => region.write(0, new Uint8Array(other.buffer)), { code: 'EFAULT' });
      assert.throws(() => other.read(0, 8), { code: 'EFAULT', syscall: 'region.read' });
      await region.write(0, new Uint8Array(other.buffer, PAGE, PAGE)); // the readable page is fine
      other.protect(0, PAGE, 'readwrite');
      await region.write(0, new Uint8Array(other.buffer));
    } finally {
      other.unmap();
    }
  });

  it('a copy racing an unread REMOVE event fails with EAGAIN, and works once the event is read', async () => {
    // A uffd opened with EVENT_REMOVE reads its events from open() on (docs/hardening.md); an
    // adopted copy reads nothing until asked, so the REMOVE below stays unread.
    const opener = Userfaultfd.open({ backend: 'native', features: ['EVENT_REMOVE'] });
    const uffd = map.closeAfter(Userfaultfd.fromFd(opener.fd, { backend: 'native' }));
    opener.close();
    // The madvise that raises REMOVE blocks until the event is read, so it must come from
    // another thread: a Worker maps the memory and drops a page of it.
    const worker = new Worker(`
      const { parentPort, workerData } = require('worker_threads');
      const { Region } = require(workerData.dist);
      const r = Region.map(64 * ${PAGE}, { backend: 'native' });
      parentPort.postMessage({ start: r.address, length: r.length });
      parentPort.once('message', () => {
        r.dontneed(0, ${PAGE});           // blocks until the REMOVE is read
        parentPort.postMessage('dropped');
      });
      setInterval(() => {}, 1000); // alive (and the mapping with it) until terminated
    `, { eval: true, workerData: { dist: DIST } });
    try {
      const range = await new Promise((resolve) => worker.once('message', resolve));
      uffd.register(range); // same process: the Worker's mapping is ours to register
      worker.postMessage('go');
      let eagain = null;
      for (let page = 1; page < 64 && !eagain; page++) {
        try {
          uffd.copy(range.start + BigInt(page * PAGE), pattern(PAGE, page), { dontWake: true });
          await delay(5); // the Worker may not have reached madvise yet
        } catch (e) {
          if (!(e instanceof UffdError) || e.code !== 'EAGAIN') throw e;
          eagain = { error: e, page };
        }
      }
      assert.ok(eagain, 'no EAGAIN seen while the REMOVE event was unread');
      assert.strictEqual(eagain.error.errno, 11);
      assert.strictEqual(eagain.error.syscall, 'UFFDIO_COPY');
      const removes = [];
      const dropped = new Promise((resolve) => worker.once('message', resolve));
      const removed = new Promise((resolve) => uffd.on('remove', (e) => { removes.push(e); resolve(); })); // starts the reader
      assert.strictEqual(await dropped, 'dropped');
      await removed;
      assert.strictEqual(uffd.copy(range.start + BigInt(eagain.page * PAGE), pattern(PAGE, 1)), PAGE);
      assert.strictEqual(removes.length, 1);
      assert.strictEqual(removes[0].start, range.start);
      assert.strictEqual(removes[0].end, range.start + BigInt(PAGE));
    } finally {
      uffd.close(); // releases the Worker if the test failed while it was blocked
      await worker.terminate();
    }
  });

  it("ESRCH: copying into a forked child's memory after it has exited", async function () {
    requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    const uffd = map.open({ features: ['EVENT_FORK'] });
    const region = map(4);
    uffd.register(region);
    const forked = new Promise((resolve) => uffd.on('fork', (e) => resolve(e.uffd)));
    // libuv spawns with fork(): the child's copy of the registered range comes with a new uffd.
    const child = spawn('/bin/true', { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const childUffd = await forked;
    try {
      assert.strictEqual(await exited, 0);
      assert.throws(() => childUffd.copy(region.address, pattern(PAGE, 1)),
        (e) => e instanceof UffdError && e.code === 'ESRCH' && e.syscall === 'UFFDIO_COPY');
      assert.throws(() => childUffd.zeropage({ start: region.address, length: PAGE }), { code: 'ESRCH' });
    } finally {
      childUffd.close();
    }
  });
});
