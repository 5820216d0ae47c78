// The suite's own children: startProcess runs each in a process group of its own (so that its
// deadline kills what it spawned), which neither Ctrl-C nor the death of the run reaches. A run
// that ends first (it exits, or SIGINT/SIGTERM/SIGHUP stop it) kills them: no test leaves a
// process behind (a firecracker-handler --peers 2 outlived a killed mocha run).
const assert = require('assert');
const path = require('path');
const { runChild, scaled, skipWithReason, processExited: exited } = require('../helpers');

const HELPERS = path.join(__dirname, '..', 'helpers.js');

/** A run that starts `sleep 60` through startProcess, prints its pid, then ends by `end`. */
async function runThatEnds(end) {
  const r = await runChild(`
    const { startProcess } = require(${JSON.stringify(HELPERS)});
    const h = startProcess('sleep', ['60'], { timeoutMs: 60000 });
    console.log(h.pid);
    setTimeout(() => { ${end} }, 200);
  `, { timeoutMs: 30000 });
  const pid = Number(r.stdout.trim().split('\n').pop());
  assert.ok(pid > 0, r.stderr);
  const deadline = Date.now() + scaled(5000);
  while (!exited(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  const alive = !exited(pid);
  if (alive) process.kill(pid, 'SIGKILL');
  assert.ok(!alive, 'the child outlived the run that started it');
  return r;
}

describe('test helpers: startProcess children die with the run', function () {
  before(function () {
    if (process.platform !== 'linux') skipWithReason(this, 'reads /proc/<pid>/status: Linux only');
  });
  this.timeout(scaled(40000));

  it('the run exits (process.exit): its children are killed', async function () {
    const r = await runThatEnds('process.exit(3)');
    assert.deepStrictEqual([r.code, r.signal], [3, null], r.stderr);
  });

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    it(`the run is stopped by ${signal}: its children are killed, and the run still ends by ${signal}`, async function () {
      const r = await runThatEnds(`process.kill(process.pid, '${signal}')`);
      assert.deepStrictEqual([r.code, r.signal], [null, signal], r.stderr);
    });
  }
});
