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
      const region = Region.map(4096, { backend });
      uffd.register(region);
      uffd.on('pagefault', () => { console.log('fault'); process.exit(3); });
      region.read(0, 1);`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut, r.stdout.trim()], [3, null, false, 'fault']);
  });

  it('a read waiting on a fault holds the process until the uffd is closed', async () => {
    const r = await runChild(`${prelude(backend)}
      const uffd = Userfaultfd.open({ backend });
      const region = Region.map(4096, { backend });
      uffd.register(region);
      uffd.on('pagefault', () => console.log('fault'));
      uffd.unref();
      region.read(0, 1).then((b) => console.log('read', b[0]));
      setTimeout(() => { console.log('closing'); uffd.close(); }, 50);`);
    assert.deepStrictEqual([r.code, r.signal, r.timedOut], [0, null, false]);
    assert.deepStrictEqual(r.stdout.trim().split('\n'), ['fault', 'closing', 'read 0']);
  });
});
