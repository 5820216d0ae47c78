// The JS thread reads its uffd itself, from its event loop (a libuv poll handle), while it is
// free; the reader thread watches, and reads in its stead when the JS thread is busy or stopped
// on a fault of its own (docs/threads-and-deadlock.md). Each case runs in a child with a
// deadline: a hang fails instead of stalling the run.
const assert = require('assert');
const { PageSource } = require('../../dist');
const { describeNative, runChild, pattern, PAGE, perTestUffd } = require('../helpers');

describeNative('the JS thread reads its uffd from the event loop', () => {
  const map = perTestUffd('native');

  it("reads on the JS thread with a 'pagefault' listener; serve() and EVENT_REMOVE keep the reader thread", async () => {
    // setJsReads(true) answers whether the JS thread now reads (the benchmarks' switch).
    const direct = (u) => u.handle.setJsReads(true);
    const listened = map.open();
    const r = map(2);
    listened.register(r);
    listened.on('pagefault', (e) => listened.copy(e.address, pattern(PAGE, 1)));
    assert.strictEqual(direct(listened), true);
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 1));

    const served = map.open();
    const s = map(2);
    served.serve(s, PageSource.buffer(pattern(2 * PAGE, 2)));
    served.on('pagefault', () => assert.fail('served'));
    assert.strictEqual(direct(served), false);
    assert.deepStrictEqual(await s.read(0, 2 * PAGE), pattern(2 * PAGE, 2));

    const removing = map.open({ features: ['EVENT_REMOVE'] });
    removing.register(map(1));
    removing.on('pagefault', () => {});
    assert.strictEqual(direct(removing), false);
  });

  it('a self-fault while the poll handle watches: answered by onSelfFault, then the loop reads again', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open();
      const P = uffd.pageSize;
      const region = Region.map(64 * P);
      uffd.register(region);
      const faults = [];
      const errors = [];
      uffd.on('error', (e) => errors.push(e.code));
      uffd.on('pagefault', (e) => { faults.push(Number(e.address - region.address) / P); uffd.copy(e.address, Buffer.alloc(P, 9)); });
      if (!uffd.handle.setJsReads(true)) throw new Error('not read on the JS thread');
      // 32 pages touched by the JS thread itself: it stops on each, and the watchdog answers.
      const view = new Uint8Array(region.buffer);
      let sum = 0;
      for (let p = 0; p < 32; p++) sum += view[p * P];
      setImmediate(async () => {
        const b = await region.read(40 * P, P); // from the pool: the listener answers
        console.log(JSON.stringify({ sum, errors: errors.length, codes: [...new Set(errors)], faults, byte: b[0] }));
        uffd.close();
      });
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepStrictEqual(out, { sum: 0, errors: 32, codes: ['ERR_UFFD_SELF_FAULT'], faults: [40], byte: 9 });
  });

  it('a busy JS thread (a 200 ms synchronous loop): the watchdog reads the fault, the handler answers it after', async () => {
    const r = await runChild(`
      const fs = require('fs');
      const { Worker } = require('worker_threads');
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open();
      const P = uffd.pageSize;
      const region = Region.map(P);
      uffd.register(region);
      let answeredAt = 0;
      uffd.on('pagefault', (e) => { answeredAt = Date.now(); uffd.copy(e.address, Buffer.alloc(P, 5)); });
      if (!uffd.handle.setJsReads(true)) throw new Error('not read on the JS thread');
      // A Worker reads the kernel's count of this uffd's faults while this thread is busy:
      // 'pending' counts messages nobody has read, 'total' every fault still waiting. It
      // raises \`seen\` once the fault is read and still waits, which ends the busy loop (after
      // 200 ms at least; a loaded machine may start the faulting pool thread late).
      const seen = new Int32Array(new SharedArrayBuffer(4));
      const watcher = new Worker(\`
        const fs = require('fs');
        const { workerData, parentPort } = require('worker_threads');
        const t0 = Date.now();
        (function look() {
          const info = fs.readFileSync('/proc/self/fdinfo/' + workerData.fd, 'utf8');
          const last = [Number(/pending:\\\\s*(\\\\d+)/.exec(info)[1]), Number(/total:\\\\s*(\\\\d+)/.exec(info)[1])];
          const read = last[0] === 0 && last[1] === 1;
          if (read) Atomics.store(workerData.seen, 0, 1);
          if (read || Date.now() - t0 > 10000) parentPort.postMessage(last); else setTimeout(look, 5);
        })();
      \`, { eval: true, workerData: { fd: uffd.fd, seen } });
      watcher.once('online', () => {
        const read = region.read(0, P);
        const until = Date.now() + 200;
        const cap = Date.now() + 12000;
        while ((Date.now() < until || Atomics.load(seen, 0) === 0) && Date.now() < cap);
        const busyEnd = Date.now();
        watcher.once('message', async (last) => {
          const b = await read;
          console.log(JSON.stringify({ last, after: answeredAt >= busyEnd, byte: b[0] }));
          uffd.close();
        });
      });
    `, { timeoutMs: 20000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    const out = JSON.parse(r.stdout);
    // Read (pending 0) while the fault still waits (total 1): the watchdog took it.
    assert.deepStrictEqual(out, { last: [0, 1], after: true, byte: 5 });
  });

  it('faults that keep coming (read up to 9 to a loop turn): the loop still turns, a setImmediate runs within 64 faults, every byte is right', async () => {
    const r = await runChild(`
      const { Worker } = require('worker_threads');
      const { Userfaultfd } = require('./dist');
      const uffd = Userfaultfd.open();
      const P = uffd.pageSize;
      const N = 2000;
      // A Worker touches its own memory, one page after another (each load waits for its
      // answer), while this thread answers in its listener.
      const w = new Worker(\`
        const { parentPort } = require('worker_threads');
        const { Region } = require('./dist');
        const region = Region.map(\${N} * \${P});
        parentPort.postMessage(region.address);
        parentPort.once('message', () => {
          const view = new Uint8Array(region.buffer);
          let bad = 0;
          for (let p = 0; p < \${N}; p++) if (view[p * \${P}] !== (p & 0xff)) bad++;
          parentPort.postMessage(bad);
        });
      \`, { eval: true });
      w.once('message', (base) => {
        uffd.register({ start: base, length: N * P });
        let faults = 0;
        let immediateAt = -1;
        uffd.on('pagefault', (e) => {
          const page = Number(e.address - base) / P;
          if (faults++ === 0) setImmediate(() => { immediateAt = faults; });
          uffd.copy(e.address, Buffer.alloc(P, page & 0xff));
        });
        if (!uffd.handle.setJsReads(true)) throw new Error('not read on the JS thread');
        w.once('message', (bad) => {
          console.log(JSON.stringify({ bad, faults, immediateSoon: immediateAt >= 1 && immediateAt <= 64 }));
          uffd.close();
          w.terminate();
        });
        w.postMessage('go');
      });
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), { bad: 0, faults: 2000, immediateSoon: true });
  });

  it('unref() with a fault pending: the loop still reads and answers it, then the process exits', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open();
      const P = uffd.pageSize;
      const region = Region.map(2 * P);
      uffd.register(region);
      let faults = 0;
      uffd.on('pagefault', (e) => { faults++; uffd.copy(e.address, Buffer.alloc(P, 7)); });
      if (!uffd.handle.setJsReads(true)) throw new Error('not read on the JS thread');
      const read = region.read(P, P); // a pending operation: it holds the process, not the uffd
      uffd.unref();
      read.then((b) => console.log('byte', b[0], 'faults', faults));
      process.on('exit', (code) => console.log('exit', code));
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /byte 7 faults 1\nexit 0/);
  });

  it('a Worker terminated while its uffd is polled, with and without a fault pending: no thread or fd left, exit 0', async () => {
    const r = await runChild(`
      const fs = require('fs');
      const { Worker } = require('worker_threads');
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const threads = () => fs.readdirSync('/proc/self/task').length;
      const source = (pending) => \`
        const { parentPort } = require('worker_threads');
        const { Userfaultfd, Region } = require(process.cwd() + '/dist');
        const u = Userfaultfd.open();
        const P = u.pageSize;
        const r = Region.map(4 * P);
        u.register(r);
        u.on('pagefault', (e) => {
          if (e.address !== r.address) u.copy(e.address, Buffer.alloc(P, 3));
          parentPort.postMessage(u.handle.setJsReads(true) ? 'polled' : 'not polled');
        });
        r.read(P, 1).then(() => \${pending ? 'r.read(0, 1)' : "parentPort.postMessage('polled')"});
      \`;
      const once = (pending) => new Promise((resolve) => {
        const w = new Worker(source(pending), { eval: true });
        const seen = [];
        w.on('message', (m) => {
          seen.push(m);
          if (seen.length === 2) w.terminate().then((code) => resolve({ code, seen }));
        });
      });
      (async () => {
        const first = await once(true); // warms the thread pool and the platform threads
        const before = { fds: fds(), threads: threads() };
        const results = [];
        for (let i = 0; i < 8; i++) results.push(await once(i % 2 === 0));
        await new Promise((r) => setTimeout(r, 100));
        console.log(JSON.stringify({ first, results, before, after: { fds: fds(), threads: threads() } }));
      })();
    `, { timeoutMs: 40000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    const { first, results, before, after } = JSON.parse(r.stdout);
    for (const x of [first, ...results]) assert.deepStrictEqual(x, { code: 1, seen: ['polled', 'polled'] });
    assert.deepStrictEqual(after, before);
  });
});

describeNative('the async context a handler runs in', () => {
  it("AsyncLocalStorage: a listener added inside als.run() sees its store, read on the loop or through the reader thread", async () => {
    const r = await runChild(`
      const { AsyncLocalStorage } = require('async_hooks');
      const { Userfaultfd, Region } = require('./dist');
      const als = new AsyncLocalStorage();
      const once = (jsReads) => {
        const u = Userfaultfd.open();
        const region = Region.map(u.pageSize);
        u.register(region);
        let seen;
        als.run({ who: jsReads ? 'loop' : 'hop' }, () => {
          u.on('pagefault', (e) => { seen = als.getStore(); u.copy(e.address, Buffer.alloc(u.pageSize, 1)); });
        });
        if (u.handle.setJsReads(jsReads) !== jsReads) throw new Error('setJsReads');
        return region.read(0, 1).then(() => { u.close(); return seen && seen.who; });
      };
      (async () => console.log(await once(true), await once(false)))();
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.strictEqual(r.stdout.trim(), 'loop hop');
  });
});

describeNative('process.exit() and close() from a handler the loop called', () => {
  it('close() inside the listener, then process.exit() inside the next one: no crash, exit code kept', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const make = (onFault) => {
        const u = Userfaultfd.open();
        const region = Region.map(u.pageSize);
        u.register(region);
        u.on('pagefault', (e) => onFault(u, e));
        if (!u.handle.setJsReads(true)) throw new Error('not read on the JS thread');
        return region;
      };
      const a = make((u, e) => { u.copy(e.address, Buffer.alloc(u.pageSize, 1)); u.close(); });
      a.read(0, 1).then((b) => {
        console.log('closed in handler', b[0]);
        make(() => process.exit(3)).read(0, 1);
      });
    `);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 3, null], r.stderr);
    assert.match(r.stdout, /closed in handler 1/);
  });
});
