// Issue 3, what only the kernel shows: FORK events, the self-fault guard (a fault raised by
// the JS thread itself), a Worker monitor answering the main thread's synchronous access, and
// Workers terminated with a reader running, each in a child process with a timeout. The process
// lifetime rule both backends follow is in test/conformance/lifetime.test.js.
const assert = require('assert');
const path = require('path');
const { spawnSync } = require('child_process');
const { Worker } = require('worker_threads');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { binding } = require('../../dist/base/native');
const { requireLacking, requireFeature, requireNoSanitizer, runChild, pattern, PAGE, describeNative, requirePrivileged, nextEvent } = require('../helpers');



describeNative('FORK events', () => {
  it('spawnSync(\'true\') with EVENT_FORK delivers a fork event with a Userfaultfd, and does not hang', async function () {
    requireFeature(this, 'native', 'EVENT_FORK');
    requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    const uffd = Userfaultfd.open({ features: ['EVENT_FORK'] });
    const region = Region.map(2 * PAGE);
    let child;
    try {
      uffd.register(region);
      uffd.copy(region.address, pattern(PAGE, 1));
      const forked = nextEvent(uffd, 'fork');
      const r = spawnSync('true');
      assert.strictEqual(r.status, 0);
      const e = await forked;
      child = e.uffd;
      assert.strictEqual(e.type, 'fork');
      assert.ok(child instanceof Userfaultfd);
      assert.strictEqual(child.backend, 'native');
      assert.ok(child.fd >= 0 && child.fd !== uffd.fd);
      assert.deepStrictEqual([...child.features].sort(), [...uffd.features].sort());
      assert.ok(child.ioctls.includes('register') && child.ioctls.includes('api'), `ioctls ${child.ioctls}`);
      // The parent's uffd still works after the fork.
      assert.strictEqual(uffd.copy(region.address + BigInt(PAGE), pattern(PAGE, 2)), PAGE);
      assert.deepStrictEqual(await region.read(0, 2 * PAGE), Buffer.concat([pattern(PAGE, 1), pattern(PAGE, 2)]));
    } finally {
      if (child) child.close();
      uffd.close();
      region.unmap();
    }
  });

  it('a fork event nobody listens to for is read anyway: spawnSync does not hang', async function () {
    requireFeature(this, 'native', 'EVENT_FORK');
    requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    const uffd = Userfaultfd.open({ features: ['EVENT_FORK'] });
    const region = Region.map(PAGE);
    try {
      uffd.register(region);
      uffd.on('pagefault', () => {}); // reader running; no 'fork' listener
      assert.strictEqual(spawnSync('true').status, 0);
      assert.strictEqual(spawnSync('true').status, 0);
    } finally { uffd.close(); region.unmap(); }
  });
});

describeNative('FORK events while other threads\' readers deliver', () => {
  // A thread that forks holds glibc's malloc locks inside clone(2), and the kernel keeps it
  // there until every uffd with EVENT_FORK has read the FORK event. Readers that allocated
  // while delivering (their queue to JavaScript grew, Node's thread-safe function queued a call)
  // waited on those locks, never read their FORK event, and the process hung for good.
  it('Workers flood their readers with REMOVE events while the main thread forks 150 times: no hang', async function () {
    requireFeature(this, 'native', 'EVENT_FORK');
    requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    this.timeout(90000);
    const r = await runChild(`
      const { Worker } = require('worker_threads');
      const { spawnSync } = require('child_process');
      const dist = require('path').resolve('dist');
      const { Userfaultfd, Region } = require(dist);
      const workers = [];
      for (let i = 0; i < 4; i++) {
        workers.push(new Worker(\`
          const { parentPort, workerData } = require('worker_threads');
          const { Userfaultfd, Region } = require(workerData);
          const uffd = Userfaultfd.open({ features: ['EVENT_FORK', 'EVENT_REMOVE'] });
          const ps = uffd.pageSize;
          const region = Region.map(16 * ps);
          uffd.register(region);
          let removes = 0;
          uffd.on('remove', () => removes++);
          uffd.on('fork', (e) => e.uffd.close());
          let stop = false;
          parentPort.on('message', () => { stop = true; parentPort.postMessage(removes); uffd.close(); region.unmap(); });
          (function loop() {
            for (let i = 0; i < 200 && !stop; i++) region.dontneed((i % 16) * ps, ps);
            if (!stop) setImmediate(loop);
          })();
          parentPort.postMessage('ready');
        \`, { eval: true, workerData: dist }));
      }
      Promise.all(workers.map((w) => new Promise((r) => w.once('message', r)))).then(async () => {
        const uffd = Userfaultfd.open({ features: ['EVENT_FORK'] });
        const region = Region.map(uffd.pageSize);
        uffd.register(region);
        let forks = 0;
        uffd.on('fork', (e) => { forks++; e.uffd.close(); });
        for (let i = 0; i < 150; i++) {
          if (spawnSync('true').status !== 0) throw new Error('spawnSync failed');
          await new Promise((r) => setImmediate(r));
        }
        const removes = await Promise.all(workers.map((w) => { w.postMessage('stop'); return new Promise((r) => w.once('message', r)); }));
        uffd.close();
        region.unmap();
        console.log(JSON.stringify({ forks, removes: removes.reduce((a, b) => a + b, 0) }));
        await Promise.all(workers.map((w) => w.terminate()));
      });
    `, { timeoutMs: 60000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr + r.stdout);
    const { forks, removes } = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.strictEqual(forks, 150, 'every fork delivered its FORK event');
    assert.ok(removes > 0, 'the readers of the Workers delivered events meanwhile');
  });
});

describeNative('self-fault guard: the JS thread touches registered memory itself', () => {
  it("'zeropage' (default): the read returns 0 and an ERR_UFFD_SELF_FAULT error event follows", async () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(2 * PAGE);
    try {
      uffd.register(region);
      const handled = [];
      uffd.on('pagefault', (e) => handled.push(e));
      const error = nextEvent(uffd, 'error');
      const view = new Uint8Array(region.buffer);
      assert.strictEqual(view[PAGE + 5], 0); // the JS thread sleeps in the kernel until the guard answers
      const err = await error;
      assert.strictEqual(err.code, 'ERR_UFFD_SELF_FAULT');
      assert.strictEqual(err.fault.address, region.address + BigInt(PAGE));
      assert.strictEqual(err.fault.tid, process.pid, 'the main thread\'s tid is the pid');
      assert.deepStrictEqual(handled, [], 'the handler never sees a fault it cannot answer');
      // A write to the guard's zero page lands: it is an ordinary page now.
      view[PAGE + 5] = 42;
      assert.strictEqual((await region.read(PAGE + 5, 1))[0], 42);
    } finally { uffd.close(); region.unmap(); }
  });

  it("'zeropage': a synchronous write-protect fault is un-protected by the guard", async function () {
    requireFeature(this, 'native', 'PAGEFAULT_FLAG_WP');
    const uffd = Userfaultfd.open();
    const region = Region.map(PAGE);
    try {
      uffd.register(region, { missing: true, wp: true });
      uffd.copy(region.address, pattern(PAGE, 4), { wp: true });
      uffd.on('pagefault', () => {});
      const error = nextEvent(uffd, 'error');
      new Uint8Array(region.buffer)[3] = 99;
      const err = await error;
      assert.strictEqual(err.code, 'ERR_UFFD_SELF_FAULT');
      assert.strictEqual(err.fault.wp, true);
      const expected = pattern(PAGE, 4);
      expected[3] = 99;
      assert.deepStrictEqual(await region.read(0, PAGE), expected);
    } finally { uffd.close(); region.unmap(); }
  });

  it("'source': a served range answers the JS thread's read from its source, with no error", async () => {
    const uffd = Userfaultfd.open({ onSelfFault: 'source' });
    const region = Region.map(4 * PAGE);
    try {
      const errors = [];
      uffd.on('error', (e) => errors.push(e));
      uffd.serve(region, PageSource.buffer(pattern(4 * PAGE, 90)));
      const view = new Uint8Array(region.buffer);
      assert.strictEqual(view[3 * PAGE + 1], pattern(4 * PAGE, 90)[3 * PAGE + 1]);
      assert.deepStrictEqual(Buffer.from(view.subarray(0, PAGE)), pattern(4 * PAGE, 90).subarray(0, PAGE));
      await new Promise((r) => setImmediate(r));
      assert.deepStrictEqual(errors, []);
    } finally { uffd.close(); region.unmap(); }
  });

  it("'source': outside any served range it falls back to a zero page and reports it", async () => {
    const uffd = Userfaultfd.open({ onSelfFault: 'source' });
    const region = Region.map(PAGE);
    try {
      uffd.register(region);
      uffd.on('pagefault', () => {});
      const error = nextEvent(uffd, 'error');
      assert.strictEqual(new Uint8Array(region.buffer)[0], 0);
      assert.strictEqual((await error).code, 'ERR_UFFD_SELF_FAULT');
    } finally { uffd.close(); region.unmap(); }
  });

  it("'sigbus': the child that reads a missing page on its JS thread is killed by SIGBUS", async function () {
    requireFeature(this, 'native', 'POISON');
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open({ onSelfFault: 'sigbus' });
      const region = Region.map(${PAGE});
      uffd.register(region);
      uffd.on('pagefault', () => {});
      console.log('reading');
      const v = new Uint8Array(region.buffer)[0];
      console.log('survived', v);
    `);
    assert.strictEqual(r.timedOut, false, 'the guard answered: no hang');
    assert.strictEqual(r.signal, 'SIGBUS', JSON.stringify(r));
    assert.match(r.stdout, /reading/);
    assert.doesNotMatch(r.stdout, /survived/);
  });

  it("'sigbus' on a kernel without POISON falls back to a zero page and reports it", async function () {
    requireLacking(this, 'native', 'POISON', 'the fallback is for kernels before 6.6');
    const uffd = Userfaultfd.open({ onSelfFault: 'sigbus' });
    const region = Region.map(PAGE);
    try {
      uffd.register(region);
      uffd.on('pagefault', () => {});
      const error = nextEvent(uffd, 'error');
      assert.strictEqual(new Uint8Array(region.buffer)[0], 0);
      const err = await error;
      assert.strictEqual(err.code, 'ERR_UFFD_SELF_FAULT');
      assert.match(err.message, /zero page/);
    } finally { uffd.close(); region.unmap(); }
  });

  it('the guard answers faults of this thread only: a thread-pool fault still goes to the handler', async () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(PAGE);
    try {
      uffd.register(region);
      const seen = [];
      uffd.on('pagefault', (e) => { seen.push(e); uffd.copy(e.address, pattern(PAGE, 3)); });
      assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 3));
      assert.strictEqual(seen.length, 1);
      assert.notStrictEqual(seen[0].tid, binding.gettid());
    } finally { uffd.close(); region.unmap(); }
  });
});

describeNative('errors nobody listens to (child processes)', () => {
  it("a self fault with no 'error' listener: the read still returns, then the error is thrown as uncaught", async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open();
      const region = Region.map(${PAGE});
      uffd.register(region);
      uffd.on('pagefault', () => {});
      console.log('value', new Uint8Array(region.buffer)[0]);
    `);
    assert.strictEqual(r.timedOut, false);
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(r.stdout, /value 0/);
    assert.match(r.stderr, /ERR_UFFD_SELF_FAULT/);
  });
  it('a handler that throws with no error listener: every fault of the batch is still answered', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open();
      const region = Region.map(16 * ${PAGE});
      uffd.register(region);
      let uncaught = 0;
      process.on('uncaughtException', () => { uncaught++; });
      uffd.on('pagefault', (e) => {
        if (e.address === region.address) throw new Error('first one fails');
        uffd.copy(e.address, Buffer.alloc(${PAGE}, 7));
      });
      const reads = [];
      for (let i = 0; i < 16; i++) reads.push(region.read(i * ${PAGE}, 1));
      Promise.all(reads).then((b) => { console.log('bytes', b.map((x) => x[0]).join(','), 'uncaught', uncaught); uffd.close(); });
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /bytes 0(,7){15} uncaught [1-9]/);
  });
});

describeNative('a Worker monitor', () => {
  it('a Worker holding Userfaultfd.fromFd(fd) answers the main thread\'s synchronous reads', async () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(4 * PAGE);
    const worker = new Worker(`
      const { parentPort, workerData } = require('worker_threads');
      const { Userfaultfd } = require(workerData.dist);
      const uffd = Userfaultfd.fromFd(workerData.fd);
      let answered = 0;
      uffd.on('pagefault', (e) => {
        const page = Buffer.alloc(${PAGE}, Number((e.address / ${PAGE}n) % 251n));
        uffd.copy(e.address, page);
        answered++;
        parentPort.postMessage({ answered, tid: e.tid });
      });
      parentPort.on('message', (m) => { if (m === 'stop') { uffd.close(); parentPort.close(); } });
      parentPort.postMessage('ready');
    `, { eval: true, workerData: { fd: uffd.fd, dist: path.join(__dirname, '../../dist') } });
    const messages = [];
    worker.on('message', (m) => messages.push(m));
    try {
      await nextEvent(worker, 'message'); // 'ready'
      uffd.register(region); // the main uffd has no listener: its reader never starts
      const view = new Uint8Array(region.buffer);
      for (let i = 0; i < 4; i++) {
        const expected = Number(((region.address + BigInt(i * PAGE)) / BigInt(PAGE)) % 251n);
        assert.strictEqual(view[i * PAGE + 100], expected, `page ${i}`); // blocks until the worker answers
      }
      assert.strictEqual(uffd.listenerCount('pagefault'), 0);
      await new Promise((r) => setImmediate(r));
      while (messages.filter((m) => m !== 'ready').length < 4) await nextEvent(worker, 'message');
      const answers = messages.filter((m) => m !== 'ready');
      assert.strictEqual(answers.length, 4);
      for (const a of answers) assert.strictEqual(a.tid, process.pid, 'the faults came from the main thread');
    } finally {
      worker.postMessage('stop');
      await nextEvent(worker, 'exit');
      uffd.close();
      region.unmap();
    }
  });
});

describeNative('process lifetime: Workers (child processes, with a timeout)', () => {
  for (const pending of [false, true]) {
    it(`a Worker with an open uffd, a running reader${pending ? ' and a read waiting on a fault' : ''} is terminated cleanly`, async () => {
      const r = await runChild(`
        const { Worker } = require('worker_threads');
        const w = new Worker(\`
          const { parentPort } = require('worker_threads');
          const { Userfaultfd, Region } = require(process.cwd() + '/dist');
          const u = Userfaultfd.open(); const r = Region.map(${PAGE}); u.register(r);
          u.on('pagefault', () => parentPort.postMessage('fault'));
          ${pending ? "r.read(0, 1);" : "parentPort.postMessage('fault');"}
        \`, { eval: true });
        w.once('message', () => w.terminate().then((c) => console.log('terminated', c)));
      `);
      assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr + r.stdout);
      assert.match(r.stdout, /terminated 1/);
    });
  }
});

describeNative('cleanup leaves no thread or fd behind (child processes)', () => {
  it('a uffd and a region dropped without close()/unmap() are closed by their finalizers', async function () {
    requireNoSanitizer(this, 'the test counts the process\'s fds');
    const r = await runChild(`
      const fs = require('fs');
      const { Userfaultfd, Region } = require('./dist');
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      (async () => {
        const warm = Userfaultfd.open(); warm.close(); Region.map(${PAGE}, { shared: true }).unmap();
        await new Promise((r) => setImmediate(r)); // a warning (user-mode-only) opens stderr's stream
        const base = fds();
        // In a function of its own: a suspended async function keeps its registers alive.
        (function openAndDrop() {
          for (let i = 0; i < 40; i++) { const u = Userfaultfd.open(); const r = Region.map(${PAGE}, { shared: true }); u.register(r); }
        })();
        const opened = fds();
        for (let i = 0; i < 10 && fds() > base; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
        console.log(JSON.stringify({ base, opened, after: fds() }));
      })();
    `, { env: { NODE_OPTIONS: '--expose-gc' } });
    assert.deepStrictEqual([r.timedOut, r.code], [false, 0], r.stderr);
    const { base, opened, after } = JSON.parse(r.stdout);
    assert.ok(opened >= base + 80, r.stdout);
    assert.strictEqual(after, base, r.stdout);
  });

  it('terminated Workers with running readers and pending faults leave no thread or fd behind', async () => {
    const r = await runChild(`
      const fs = require('fs');
      const { Worker } = require('worker_threads');
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const threads = () => fs.readdirSync('/proc/self/task').length;
      const source = \`
        const { parentPort } = require('worker_threads');
        const { Userfaultfd, Region } = require(process.cwd() + '/dist');
        const u = Userfaultfd.open({ features: ['EVENT_REMOVE'] });
        const r = Region.map(4 * ${PAGE}); u.register(r);
        u.on('pagefault', () => parentPort.postMessage('fault'));
        r.read(0, 1);
      \`;
      const once = () => new Promise((resolve) => {
        const w = new Worker(source, { eval: true });
        w.once('message', () => w.terminate().then(resolve));
      });
      (async () => {
        await once(); // warms the thread pool and the platform threads
        const before = { fds: fds(), threads: threads() };
        for (let i = 0; i < 8; i++) await once();
        await new Promise((r) => setTimeout(r, 100));
        console.log(JSON.stringify({ before, after: { fds: fds(), threads: threads() } }));
      })();
    `, { timeoutMs: 30000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    const { before, after } = JSON.parse(r.stdout);
    assert.strictEqual(after.fds, before.fds, r.stdout);
    assert.strictEqual(after.threads, before.threads, r.stdout);
  });
});
