// Lifetime: what keeps the process alive (consumers while ref'd), and what lets it go.
const assert = require('assert');
const { describeBackends, runChild } = require('../helpers');

const prelude = (backend) => `
  const { Userfaultfd, Region } = require('./dist');
  const backend = ${JSON.stringify(backend)};
`;

describeBackends('lifetime: ref, unref, close', (backend) => {
  it('an open uffd with no consumer does not keep the process alive (and is closed at exit)', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      process.on('exit', () => console.log('exit', uffd.closed));`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut, r.stdout.trim()], [0, null, false, 'exit true']);
  });

  it('a pagefault listener keeps it alive until close()', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      uffd.on('pagefault', () => {});
      let ticks = 0;
      const t = setInterval(() => { if (++ticks === 3) { clearInterval(t); console.log('closing'); uffd.close(); } }, 20);
      process.on('exit', () => console.log('exit after', ticks));`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut], [0, null, false]);
    assert.deepStrictEqual(r.stdout.trim().split('\n'), ['closing', 'exit after 3']);
  });

  it('unref() lets the process exit with a listener; ref() holds it again', async () => {
    const r = await runChild(`${prelude(backend)}
      const a = Userfaultfd.open({ backend });
      a.on('pagefault', () => {});
      if (a.unref() !== a) throw new Error('unref must return this');
      const b = Userfaultfd.open({ backend });
      b.on('pagefault', () => {});
      b.unref();
      if (b.ref() !== b) throw new Error('ref must return this');
      setTimeout(() => { b.close(); console.log('b closed'); }, 30);`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut, r.stdout.trim()], [0, null, false, 'b closed']);
  });

  it('an events() iterator keeps the process alive until it returns', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      const it = uffd.events();
      setTimeout(() => { it.return(); console.log('returned'); }, 30);
      process.on('exit', () => uffd.close());`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut, r.stdout.trim()], [0, null, false, 'returned']);
  });

  it('process.exit() with a read waiting on a fault exits cleanly', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(uffd.pageSize, { backend });
      uffd.register(region);
      uffd.on('pagefault', () => { console.log('fault'); process.exit(3); });
      region.read(0, 1);`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut, r.stdout.trim()], [3, null, false, 'fault']);
  });

  it('a read waiting on a fault holds the process until the uffd is closed', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(uffd.pageSize, { backend });
      uffd.register(region);
      // The timer is unref'd: only the waiting read can hold the process until it fires.
      uffd.on('pagefault', () => {
        console.log('fault');
        setTimeout(() => { console.log('closing'); uffd.close(); }, 50).unref();
      });
      uffd.unref();
      region.read(0, 1).then((b) => console.log('read', b[0]));`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut], [0, null, false]);
    assert.deepStrictEqual(r.stdout.trim().split('\n'), ['fault', 'closing', 'read 0']);
  });
});

/** The prelude with a uffd and a registered region, and a heartbeat that holds nothing. */
const registered = (backend) => `${prelude(backend)}
  const uffd = Userfaultfd.open({ backend });
  const region = Region.map(4 * uffd.pageSize, { backend });
  uffd.register(region);
  setInterval(() => console.log('alive'), 50).unref();
`;

describeBackends('lifetime: a registered region, faults answered or waiting', (backend) => {
  it('exits by itself with no listener', async () => {
    const r = await runChild(`${registered(backend)} console.log('done');`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /done/);
  });
  it('exits by itself after close()', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(uffd.pageSize, 1)));
      region.read(0, 1).then((b) => { console.log('read', b[0]); uffd.close(); });`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /read 1/);
  });
  it('exits by itself after unref(), with the listener still on', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(uffd.pageSize, 2)));
      region.read(0, 1).then((b) => { console.log('read', b[0]); uffd.unref(); });`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /read 2/);
  });
  it('a read left waiting on an unanswered fault keeps the process alive after unref(), like a pending fs.read', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', () => { console.log('fault'); uffd.unref(); });
      region.read(0, 1).then((b) => console.log('released', b[0]));`, { timeoutMs: 1500 });
    assert.strictEqual(r.timedOut, true, `exited by itself: ${JSON.stringify(r)}`);
    assert.match(r.stdout, /fault/);
    assert.doesNotMatch(r.stdout, /released/);
  });
  it('... and close() from a timer releases that read, and the process exits', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', () => { console.log('fault'); setTimeout(() => uffd.close(), 100); });
      region.read(0, 1).then((b) => console.log('released', b[0]));`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /fault\n(alive\n)*released 0/);
  });
  it('exits after removing its last listener', async () => {
    const r = await runChild(`${registered(backend)}
      const h = (e) => { uffd.copy(e.address, Buffer.alloc(uffd.pageSize, 3)); };
      uffd.on('pagefault', h);
      region.read(0, 1).then((b) => { console.log('read', b[0]); uffd.off('pagefault', h); });`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
  });
  it('exits after an events() iteration ends with break', async () => {
    const r = await runChild(`${registered(backend)}
      (async () => { for await (const e of uffd.events()) { uffd.copy(e.address, Buffer.alloc(uffd.pageSize, 4)); break; } console.log('loop done'); })();
      region.read(0, 1).then((b) => console.log('read', b[0]));`);
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /read 4/);
  });
  it('stays alive while a ref\'d uffd has a listener (killed by the timeout, heartbeats printed)', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(uffd.pageSize, 5)));
      region.read(0, 1).then((b) => console.log('read', b[0]));`, { timeoutMs: 1500 });
    assert.strictEqual(r.timedOut, true, `exited by itself: ${JSON.stringify(r)}`);
    assert.strictEqual(r.signal, 'SIGKILL');
    assert.match(r.stdout, /read 5/);
    assert.ok(r.stdout.split('\n').filter((l) => l === 'alive').length >= 2, r.stdout);
  });
  it('ref() after unref() keeps it alive again', async () => {
    const r = await runChild(`${registered(backend)}
      uffd.on('pagefault', () => {});
      uffd.unref().ref();`, { timeoutMs: 1500 });
    assert.strictEqual(r.timedOut, true, `exited by itself: ${JSON.stringify(r)}`);
    assert.ok(r.stdout.includes('alive'));
  });
});
