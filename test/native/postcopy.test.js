// examples/postcopy: post-copy migration of a 64 MiB image over TCP loopback, both sides
// spawned by the example itself.
const assert = require('assert');
const path = require('path');
const { runChild, describeNative, scaled } = require('../helpers');

const EXAMPLE = path.join(__dirname, '..', '..', 'examples', 'postcopy', 'index.js');

describeNative('examples/postcopy over TCP loopback', function () {
  this.timeout(scaled(180000));

  it('a 64 MiB image arrives whole: destination checksum == source checksum', async function () {
    const r = await runChild(EXAMPLE, { isFile: true, args: ['--size', '64', '--json'], timeoutMs: 150000 });
    assert.strictEqual(r.timedOut, false, `timed out: ${r.stderr}`);
    assert.deepStrictEqual([r.code, r.signal], [0, null], r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.strictEqual(result.size, 64 << 20);
    assert.match(result.sourceChecksumPrinted, /^[0-9a-f]{64}$/);
    assert.strictEqual(result.destinationChecksum, result.sourceChecksumPrinted);
    assert.strictEqual(result.destinationChecksum, result.sourceChecksum);
    assert.strictEqual(result.match, true);
    // Every page placed exactly once, by a demand fetch or by the background pass.
    assert.strictEqual(result.pagesOnDemand + result.pagesInBackground, result.pages);
    assert.ok(result.demandFaults >= 0 && result.requests >= 0);
    console.log(`      on demand ${result.pagesOnDemand} pages (${result.demandFaults} faults), ` +
      `background ${result.pagesInBackground}, first access ${result.firstAccessMs.toFixed(1)} ms ` +
      `vs pre-copy ${result.precopyMs.toFixed(1)} ms`);
  });
});
