// Fuzzing the whole public API in a child process (fuzz-child.js): 100,000 seeded random calls
// never crash the process, and every failure is a TypeError, RangeError or UffdError with its
// code. The seed is random unless FUZZ_SEED is set, and printed on failure: rerun with
//   FUZZ_SEED=<seed> node test/reliability/fuzz-child.js
const assert = require('assert');
const path = require('path');
const { runChild, describeNative, scaled } = require('../helpers');

// Native-only: the guarded self-fault path needs the kernel.
describeNative('reliability: API fuzzing', function () {
  this.timeout(scaled(120000));

  it('survives 100,000 random calls with only TypeError/RangeError/UffdError failures', async function () {
    const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
    const calls = Number(process.env.FUZZ_CALLS || 100000);
    const r = await runChild(path.join(__dirname, 'fuzz-child.js'), {
      isFile: true, timeoutMs: 100000, env: { FUZZ_SEED: String(seed), FUZZ_CALLS: String(calls), UV_THREADPOOL_SIZE: '8' },
    });
    const where = `seed ${seed} (rerun: FUZZ_SEED=${seed} node test/reliability/fuzz-child.js)\n` +
      `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`;
    assert.strictEqual(r.timedOut, false, `the fuzzer hung: ${where}`);
    assert.strictEqual(r.signal, null, `the fuzzer died of a signal: ${where}`);
    assert.strictEqual(r.code, 0, `the fuzzer failed: ${where}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('FUZZ OK'));
    assert.ok(line, where);
    const counts = JSON.parse(line.slice(line.indexOf('{')));
    assert.ok(counts.calls >= calls, `${counts.calls} calls`); // plus those made from inside handlers
    // The run reached the interesting paths, not only argument checks.
    assert.ok(counts.UffdError > 0 && counts.TypeError > 0 && counts.RangeError > 0, line);
    assert.ok(counts.faults > 0 && counts.guardedAccesses > 0, line);
    console.log(`      seed ${seed}: ${counts.calls} calls, ${counts.ok} ok, ${counts.TypeError} TypeError, ` +
      `${counts.RangeError} RangeError, ${counts.UffdError} UffdError, ${counts.faults} faults, ` +
      `${counts.guardedAccesses} main-thread accesses through the self-fault guard`);
  });
});
