// A Worker touches its own registered memory with no reader, then is terminated: its JS thread
// is stopped in the kernel, so its cleanup hooks cannot run; terminate() never resolved and
// process.exit() hung. Each case runs in a child with a deadline (a hang fails the case).
const assert = require('assert');
const { describeBackends, describeNative, runChild, scaled, PAGE } = require('../helpers');

function run(backend, touch, end) {
  return runChild(`
    require('./dist');  // the thread that makes the Worker has the package loaded
    const { Worker } = require('worker_threads');
    const w = new Worker(\`
      const { parentPort, workerData } = require('worker_threads');
      const { Userfaultfd, Region } = require(workerData.dist);
      const region = Region.map(4 * ${PAGE}, { backend: '${backend}' });
      const uffd = Userfaultfd.open({ backend: '${backend}' });
      uffd.register(region);
      parentPort.postMessage('ready');
      ${touch}
    \`, { eval: true, workerData: { dist: require('path').resolve('dist') } });
    w.on('error', (e) => { console.log('worker error', e.message); });
    w.once('message', () => setTimeout(async () => {
      ${end}
    }, 200));`, { timeoutMs: 15000 });
}

function expectExit(r, code) {
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, `hung: ${info}`);
  assert.strictEqual(r.signal, null, info);
  assert.strictEqual(r.code, code, info);
  return r.stdout;
}

const TERMINATE = "const c = await w.terminate(); console.log('terminated', c);";
const EXIT = "console.log('exiting'); process.exit(4);";

describeNative('reliability: a Worker stopped on a fault of its own uffd', function () {
  this.timeout(scaled(60000));
  const touch = `new Uint8Array(region.buffer)[${PAGE}];  // the Worker's own JS thread waits here`;

  it('terminate() resolves', async () => {
    assert.match(expectExit(await run('native', touch, TERMINATE), 0), /terminated 1/);
  });

  it('process.exit() exits', async () => {
    expectExit(await run('native', touch, EXIT), 4);
  });
});

describeBackends('reliability: a Worker whose region.read waits on its own uffd', (backend) => {
  const touch = `region.read(${PAGE}, 8);`;
  it('terminate() resolves and process.exit() exits', async () => {
    assert.match(expectExit(await run(backend, touch, TERMINATE), 0), /terminated 1/);
    expectExit(await run(backend, touch, EXIT), 4);
  });
});

describeNative('reliability: the addon outlives the Workers that loaded it', () => {
  // Node unloads an addon with the last environment that loaded it. Here that is a Worker (the
  // main thread never loads the package); the SIGBUS guard the Worker's Region installed stays
  // installed, and a SIGBUS raised afterwards jumped into unmapped code: the process died of
  // SIGSEGV instead of SIGBUS.
  it('a SIGBUS after the only Worker that used the addon has exited still kills with SIGBUS', async () => {
    const r = await runChild(`
      const { Worker } = require('worker_threads');
      const w = new Worker(\`
        const { Region } = require(require('worker_threads').workerData.dist);
        Region.map(4096).unmap();
      \`, { eval: true, workerData: { dist: require('path').resolve('dist') } });
      w.on('exit', () => setTimeout(() => process.kill(process.pid, 'SIGBUS'), 100));
    `, { timeoutMs: 15000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, null, 'SIGBUS'], r.stderr + r.stdout);
  });
});
