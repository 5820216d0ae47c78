// An fd listener in a Worker that is terminated while connections are delivering fds. The
// listener used to build its events and call JS through node-addon-api, which aborts the
// process when JS cannot run (Napi::Error during teardown), and the fds its JS held when the
// Worker stopped were never closed. Now the listener and the fault reader share one queue
// (native/reader/js_batch_queue.h): raw napi calls, and fds JS never closed are closed by the listener.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { describeNative, runChild } = require('../helpers');

describeNative('reliability: a Worker with an fd listener terminated while fds arrive', function () {
  this.timeout(120000);
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fdpass-teardown-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the process does not abort and every received fd is closed', async () => {
    const r = await runChild(path.join(__dirname, 'worker-teardown-fdpass-child.js'), {
      isFile: true, args: [dir, '4'], timeoutMs: 90000,
    });
    const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
    assert.strictEqual(r.timedOut, false, `hung: ${info}`);
    assert.deepStrictEqual([r.code, r.signal], [0, null], info);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.strictEqual(out.error, undefined, info);
    for (const round of out.rounds) {
      assert.strictEqual(round.exitCode, 1, `the listener Worker was terminated: ${info}`);
      assert.ok(round.sent > 0, `uffds were sent to the listener: ${info}`);
    }
    assert.deepStrictEqual(out.after, out.before, 'open fds by kind, before and after the rounds');
  });
});
