// close() of one copy of a uffd while a fromFd duplicate is open: the kernel keeps the
// registration, so the waiting thread waits on (docs/hardening.md). unregister() before close()
// releases it. Runs in a child with a deadline.
const assert = require('assert');
const { describeBackends, runChild, PAGE } = require('../helpers');

describeBackends('reliability: close() with a duplicate open', (backend) => {
  it('the fault waits for the other copy; unregister() then close() releases it with zeros', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const backend = '${backend}';
      const region = Region.map(4 * ${PAGE}, { backend });
      const uffd = Userfaultfd.open({ backend });
      uffd.register(region);
      const dup = Userfaultfd.fromFd(uffd.fd, { backend });
      let settled = false;
      const read = region.read(${PAGE}, 4).then((b) => { settled = true; return b; });
      (async () => {
        await new Promise((r) => setTimeout(r, 100));
        uffd.close();
        await new Promise((r) => setTimeout(r, 100));
        console.log('after close of one copy', settled);
        dup.unregister(region);
        dup.close();
        console.log('read', [...await read].join(','));
      })();`, { timeoutMs: 10000 });
    assert.strictEqual(r.timedOut, false, r.stdout + r.stderr);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /after close of one copy false/);
    assert.match(r.stdout, /read 0,0,0,0/);
  });
});
