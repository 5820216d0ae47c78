// examples/postcopy: post-copy migration of a 64 MiB image over TCP loopback, both sides
// spawned by the example itself.
const assert = require('assert');
const net = require('net');
const path = require('path');
const { runChild, describeNative, startProcess, delay } = require('../helpers');

const EXAMPLE = path.join(__dirname, '..', '..', 'examples', 'postcopy', 'index.js');

describeNative('examples/postcopy over TCP loopback', function () {
  this.timeout(180000);

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

  it('the source run on its own (stdin closed) waits for its destination, serves it, then exits 0', async function () {
    const source = startProcess(process.execPath, [EXAMPLE, 'source', '--size', '8'], { timeoutMs: 120000 });
    const deadline = Date.now() + 60000;
    while (!/^listening \d+ [0-9a-f]{64}\n/.test(source.output().stdout) && Date.now() < deadline) await delay(50);
    const [, port, sum] = source.output().stdout.split('\n')[0].split(' ');
    // A destination that comes later: the old source had exited as soon as its stdin closed.
    await delay(1500);
    const dest = await runChild(EXAMPLE, { isFile: true, args: ['destination', '--port', port], timeoutMs: 100000 });
    assert.deepStrictEqual([dest.code, dest.signal], [0, null], dest.stderr);
    const result = JSON.parse(dest.stdout.trim().split('\n').pop());
    assert.strictEqual(result.destinationChecksum, sum);
    assert.strictEqual(result.match, true);
    const s = await source.done;
    assert.deepStrictEqual([s.code, s.signal, s.timedOut], [0, null, false], s.stderr);
  });

  it('a source nobody connects to gives up after --wait, in one line with the fix', async function () {
    const r = await runChild(EXAMPLE, { isFile: true, args: ['source', '--size', '1', '--wait', '1'], timeoutMs: 60000 });
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(r.stderr, /^postcopy source: no destination connected within 1 s; start one with `node examples\/postcopy\/index\.js destination --port \d+`, or give a longer --wait\n$/);
  });

  it('a destination with nothing listening says so in one line, without ECONNREFUSED\'s stack', async function () {
    const port = await new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const r = await runChild(EXAMPLE, { isFile: true, args: ['destination', '--port', String(port)], timeoutMs: 60000 });
    assert.strictEqual(r.code, 1, r.stderr);
    assert.strictEqual(r.stderr, `postcopy: nothing is listening on 127.0.0.1:${port}: start the source first ` +
      `(node examples/postcopy/index.js source --port ${port}) and give its port\n`);
  });
});
