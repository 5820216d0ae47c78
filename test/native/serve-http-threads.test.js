// PageSource.http with many threads faulting at once: raised from a child whose thread pool has
// 33 threads (UV_THREADPOOL_SIZE is read once per process), against a node:http peer.
const assert = require('assert');
const path = require('path');
const { describeNative, runChild, scaled } = require('../helpers');

describeNative('serve: PageSource.http, 32 threads faulting on one window', function () {
  it('one ranged GET answers all 32 faults; 31 counted as deduplicated', async function () {
    this.timeout(scaled(30000));
    const child = path.join(__dirname, '..', 'fixtures', 'http-dedup-child.js');
    const out = await runChild(child, { isFile: true, timeoutMs: 25000, env: { UV_THREADPOOL_SIZE: '33' } });
    assert.strictEqual(out.code, 0, out.stderr + out.stdout);
    const result = JSON.parse(out.stdout.trim().split('\n').pop());
    assert.strictEqual(result.bytesOk, true);
    assert.strictEqual(result.gets, 1);
    assert.strictEqual(result.source.reads, 1);
    assert.strictEqual(result.source.deduplicated, 31);
  });
});
