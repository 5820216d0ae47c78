// Issue 16: examples/migrate end to end — each mode ends with equal checksums; post-copy
// fetches pages on demand. (test/examples.test.js runs its default invocation, and its usage and
// argument errors, which need no kernel.)
const assert = require('assert');
const path = require('path');
const { describeNative, runChild, scaled } = require('../helpers');

const MIGRATE = path.join(__dirname, '..', '..', 'examples', 'migrate', 'index.js');

async function migrate(args) {
  const r = await runChild(MIGRATE, { isFile: true, args: [...args, '--json'], timeoutMs: 120000 });
  assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

describeNative('examples/migrate', function () {
  this.timeout(scaled(150000));

  for (const mode of ['precopy', 'postcopy-after-precopy', 'stopcopy']) {
    it(`--mode ${mode}: the destination's memory has the source's checksum`, async () => {
      const r = await migrate(['--size', '8', '--write-set', '10', '--mode', mode]);
      assert.strictEqual(r.checksum, 'match');
      assert.strictEqual(r.mode, mode);
      if (mode === 'stopcopy') assert.strictEqual(r.rounds, 0);
      else assert.strictEqual(r.bytesPerRound[0], 8 << 20, 'round 0 sends everything');
      assert.strictEqual(typeof r.downtimeMs, 'number');
    });
  }

  it('the older mode names are aliases: hybrid is precopy, postcopy is postcopy-after-precopy', async () => {
    const hybrid = await migrate(['--size', '4', '--write-set', '10', '--mode', 'hybrid']);
    assert.deepStrictEqual([hybrid.mode, hybrid.checksum], ['precopy', 'match']);
    assert.strictEqual(hybrid.demandFaults, 0, 'precopy fetched pages on demand');
    const post = await migrate(['--size', '4', '--write-set', '10', '--mode', 'postcopy']);
    assert.deepStrictEqual([post.mode, post.checksum], ['postcopy-after-precopy', 'match']);
  });

  it('post-copy with nothing dirty at the switch (an idle writer): the 0-byte run list is read, and it matches', async () => {
    // What a writer Worker starved under load does: no write after the last round, so the
    // SWITCH frame carries no run. The destination's reader threw a TypeError on that read.
    const r = await migrate(['--size', '4', '--write-set', '0', '--mode', 'postcopy-after-precopy']);
    assert.deepStrictEqual([r.checksum, r.lastDirtyBytes, r.demandFaults], ['match', 0, 0]);
  });

  it('post-copy with a delayed push: the destination fetches dirty pages on demand, and still matches', async () => {
    const r = await migrate(['--size', '8', '--write-set', '25', '--mode', 'postcopy-after-precopy', '--push-delay', '2000']);
    assert.strictEqual(r.checksum, 'match');
    assert.ok(r.lastDirtyBytes > 0);
    assert.ok(r.demandFaults > 0, 'no page came on demand');
  });
});
