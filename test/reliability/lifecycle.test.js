// Lifecycle: a child process stopped at each stage of a uffd's life exits by itself, with the
// expected status, within a bound (runChild kills it at the bound: a hang fails the case).
const assert = require('assert');
const { runChild, describeNative, scaled } = require('../helpers');

const PRELUDE = `
const { Userfaultfd, Region, PageSource, constants } = require('./dist');
const PAGE = constants.pageSize;
const uffd = Userfaultfd.open({ backend: 'native' });
const region = Region.map(16 * PAGE, { backend: 'native' });
`;
const BOUND = 15000;

function expectExit(r, code, what) {
  const info = `${what}: code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, `did not exit by itself: ${info}`);
  assert.strictEqual(r.signal, null, info);
  assert.strictEqual(r.code, code, info);
}

describeNative('reliability: lifecycle (each stage exits by itself)', function () {
  this.timeout(scaled(60000));

  it('opened: an open uffd does not hold the process', async () => {
    expectExit(await runChild(`${PRELUDE} console.log('opened', uffd.fd > 0);`, { timeoutMs: BOUND }), 0, 'opened');
  });

  it('registered: a registered region does not hold the process', async () => {
    const r = await runChild(`${PRELUDE} uffd.register(region); console.log('registered');`, { timeoutMs: BOUND });
    expectExit(r, 0, 'registered');
    assert.match(r.stdout, /registered/);
  });

  it('reader running: a listener holds the process until close(); unref() lets it go', async () => {
    const closed = await runChild(`${PRELUDE}
      uffd.register(region);
      uffd.on('pagefault', () => {});
      setTimeout(() => { uffd.close(); console.log('closed'); }, 50);`, { timeoutMs: BOUND });
    expectExit(closed, 0, 'reader running, then close()');
    assert.match(closed.stdout, /closed/);
    const unrefed = await runChild(`${PRELUDE}
      uffd.register(region);
      uffd.on('pagefault', () => {});
      uffd.unref();`, { timeoutMs: BOUND });
    expectExit(unrefed, 0, 'reader running, unref()');
  });

  it('fault pending: close() releases the waiting thread and the process ends', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.register(region);
      uffd.on('pagefault', () => { setTimeout(() => uffd.close(), 20); }); // never answered
      region.read(3 * PAGE, 16).then((b) => console.log('read', b.every((x) => x === 0)));`, { timeoutMs: BOUND });
    expectExit(r, 0, 'fault pending');
    assert.match(r.stdout, /read true/);
  });

  it('fault pending with no reader at all: process.exit() still exits (the exit hook closes the uffd)', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.register(region);
      region.read(0, 16);          // waits forever: nobody reads this uffd
      setTimeout(() => process.exit(7), 50);`, { timeoutMs: BOUND });
    expectExit(r, 7, 'process.exit() with a fault pending');
  });

  it('process.exit() with many faults pending on the whole thread pool', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.register(region);
      uffd.on('pagefault', () => {}); // never answered
      for (let i = 0; i < 16; i++) region.read(i * PAGE, 8);
      setTimeout(() => process.exit(3), 100);`, { timeoutMs: BOUND, env: { UV_THREADPOOL_SIZE: '4' } });
    expectExit(r, 3, 'process.exit() with 16 faults pending');
  });

  it('serving: serve() alone does not hold the process, and served memory is readable on the JS thread', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.serve(region, PageSource.buffer(Buffer.alloc(16 * PAGE, 5)));
      console.log('byte', new Uint8Array(region.buffer)[5 * PAGE + 1]);`, { timeoutMs: BOUND });
    expectExit(r, 0, 'serving');
    assert.match(r.stdout, /byte 5/);
  });

  it('Worker monitor terminated while a fault is pending: the main thread closes and exits cleanly', async () => {
    const r = await runChild(`${PRELUDE}
      const { Worker } = require('worker_threads');
      uffd.register(region);
      const w = new Worker(\`
        const { parentPort, workerData } = require('worker_threads');
        const { Userfaultfd } = require(workerData.dist);
        const u = Userfaultfd.fromFd(workerData.fd);
        u.on('pagefault', (e) => parentPort.postMessage('fault ' + e.address)); // monitor: never answers
        parentPort.postMessage('ready');
      \`, { eval: true, workerData: { fd: uffd.fd, dist: require('path').resolve('dist') } });
      w.on('message', (m) => {
        if (m === 'ready') {
          region.read(2 * PAGE, 8).then((b) => console.log('read after close', b.length));
        } else if (m.startsWith('fault')) {
          console.log('monitor saw', m);
          w.terminate().then((code) => {
            console.log('worker terminated', code);
            uffd.close(); // the fault is still pending on the main thread's copy of the fd
          });
        }
      });
      w.on('error', (e) => { console.error('worker error', e); process.exitCode = 9; });`, { timeoutMs: BOUND });
    expectExit(r, 0, 'worker terminated with a fault pending');
    assert.match(r.stdout, /monitor saw fault/);
    assert.match(r.stdout, /worker terminated 1/);
    assert.match(r.stdout, /read after close 8/);
  });

  it('a Worker that owns the only reader is terminated: its env cleanup closes its fd and the process exits', async () => {
    const r = await runChild(`${PRELUDE}
      const { Worker } = require('worker_threads');
      uffd.register(region);
      const w = new Worker(\`
        const { parentPort, workerData } = require('worker_threads');
        const { Userfaultfd } = require(workerData.dist);
        const u = Userfaultfd.fromFd(workerData.fd);
        u.on('pagefault', () => {});
        parentPort.postMessage('ready');
        setInterval(() => {}, 1000);   // busy until terminated
      \`, { eval: true, workerData: { fd: uffd.fd, dist: require('path').resolve('dist') } });
      w.once('message', () => w.terminate().then((c) => { console.log('terminated', c); uffd.close(); }));`, { timeoutMs: BOUND });
    expectExit(r, 0, 'worker terminated');
    assert.match(r.stdout, /terminated 1/);
  });

  it('an uncaught exception with a fault pending dies with code 1, not a hang', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.register(region);
      uffd.on('pagefault', () => {});
      region.read(0, 8);
      setTimeout(() => { throw new Error('boom'); }, 50);`, { timeoutMs: BOUND });
    expectExit(r, 1, 'uncaught exception');
    assert.match(r.stderr, /boom/);
  });
});
