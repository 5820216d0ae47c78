// Stress in the manner of the kernel's uffd-stress (see stress-child.js): 20 MiB, 16 bounces
// alternating sequential and random order, racing faults on the same pages, every page's
// counter checked after each bounce. Once with a JS handler (main thread, and in a Worker),
// once with a native source. Each run is a child bounded to a minute.
const assert = require('assert');
const path = require('path');
const { runChild, describeNative, scaled } = require('../helpers');

const MODES = {
  js: 'a JS handler on the main thread; the thread pool faults',
  worker: 'a JS handler in a Worker (fromFd); the main thread and the thread pool fault',
  native: 'a native source (serve); the main thread and the thread pool fault',
};

describeNative('reliability: uffd-stress (20 MiB, 16 bounces, counters checked)', function () {
  this.timeout(scaled(70000));

  for (const [mode, what] of Object.entries(MODES)) {
    it(`${mode}: ${what}`, async () => {
      const r = await runChild(path.join(__dirname, 'stress-child.js'), {
        isFile: true, args: [mode], timeoutMs: 60000, env: { UV_THREADPOOL_SIZE: '6' },
      });
      const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
      assert.strictEqual(r.timedOut, false, `hung or too slow: ${info}`);
      assert.strictEqual(r.signal, null, info);
      assert.strictEqual(r.code, 0, info);
      const line = r.stdout.split('\n').find((l) => l.startsWith('STRESS OK'));
      assert.ok(line, info);
      const f = JSON.parse(line.slice(line.indexOf('{')));
      // Every page faulted in every bounce (more with racing faults), and was filled once.
      assert.ok(f.faults >= f.pages * f.bounces, line);
      assert.ok(f.copies >= f.pages * f.bounces, line);
      console.log(`      ${f.mib} MiB x ${f.bounces} bounces: ${f.faults} faults (${f.faults - f.pages * f.bounces} ` +
        `racing), ${f.eexist} EEXIST answered by wake, ${f.seconds.toFixed(1)} s`);
    });
  }
});

// The lifecycle churn of churn-child.js (issue 32): uffds opened, served, write-protected,
// dropped and torn down every way, in the main thread and Workers at once, some Workers
// terminated mid-cycle, FORK events from child processes (with CAP_SYS_PTRACE). A short run
// here; `npm run stress` runs it for 10 minutes.
describeNative('reliability: lifecycle churn across Workers (open, serve, WP, events, teardown)', function () {
  this.timeout(130000);
  it('300 cycles in the main thread and 3 Workers: every page read right, no crash, no hang', async () => {
    const r = await runChild(path.join(__dirname, 'churn-child.js'), {
      isFile: true, args: ['--cycles', '300', '--workers', '3', '--quiet'], timeoutMs: 120000,
      env: { UV_THREADPOOL_SIZE: '8', NODE_OPTIONS: '--expose-gc' },
    });
    const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], info);
    const line = r.stdout.split('\n').find((l) => l.startsWith('CHURN OK'));
    assert.ok(line, info);
    const f = JSON.parse(line.slice(line.indexOf('{')));
    assert.ok(f.cycles >= 300 - f.workersTerminated, line); // a terminated Worker's cycle in progress is lost
    assert.ok(f.reads > 0 && f.wpFaults > 0 && f.removeEvents > 0, line);
    console.log(`      ${f.cycles} cycles: ${f.reads} reads checked, ${f.wpFaults} WP faults, ${f.removeEvents} REMOVE / ` +
      `${f.unmapEvents} UNMAP / ${f.forkEvents} FORK events, ${f.workersTerminated} Workers terminated, ${f.seconds} s`);
  });
});
