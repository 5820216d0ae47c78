// snapshot() destinations that are not plain files, or that cannot take the whole image (issue
// 24), on both backends, each in a child with a deadline: a FIFO (with and without a reader)
// must reject at once with ESPIPE, never hold a thread-pool thread in open(2); a file size limit
// (ulimit -f) or a full filesystem must reject (EFBIG, ENOSPC), never resolve with bytes the
// file does not hold.
const assert = require('assert');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { describeBackends, runChildJson, runProcess, skipWithReason, privileges } = require('../helpers');

const DEADLINE = 20000;

/** A child that snapshots a written region of `pages` pages to `dest` (after `setup`), then closes. */
function snapshotSource(backend, dest, pages, setup = '') {
  return `
    const fs = require('fs');
    const { Userfaultfd, Region } = require('./dist');
    const u = Userfaultfd.open({ backend: '${backend}' });
    const r = Region.map(${pages} * u.pageSize, { backend: '${backend}' });
    const dest = ${JSON.stringify(dest)};
    const out = {};
    ${setup}
    r.write(0, Buffer.alloc(${pages} * u.pageSize, 0x5a))
      .then(() => u.snapshot(r, dest))
      .then((res) => { out.bytes = res.bytes; }, (e) => { out.code = e.code; out.name = e.constructor.name; })
      .finally(() => {
        try { const st = fs.statSync(dest); if (st.isFile()) out.fileSize = st.size; } catch {}
        out.expected = ${pages} * u.pageSize;
        u.close();
        r.unmap();
        console.log(JSON.stringify(out));
      });`;
}

describeBackends('reliability: snapshot destinations', (backend) => {
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-snapdest-'));
    fs.chmodSync(dir, 0o777);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(function () { this.timeout(DEADLINE + 10000); });

  it('a FIFO with no reader: rejected at once with ESPIPE (no thread left in open(2)), and the process exits', async () => {
    const fifo = path.join(dir, `fifo-${backend}`);
    execFileSync('mkfifo', [fifo]);
    const out = await runChildJson(snapshotSource(backend, fifo, 4), { timeoutMs: DEADLINE });
    assert.deepStrictEqual([out.code, out.name], ['ESPIPE', 'UffdError'], JSON.stringify(out));
  });

  it('a FIFO with a reader: ESPIPE too (pages are written at their offsets)', async () => {
    const fifo = path.join(dir, `fifo-read-${backend}`);
    execFileSync('mkfifo', [fifo]);
    const setup = `const reader = fs.openSync(dest, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);`;
    const out = await runChildJson(snapshotSource(backend, fifo, 4, setup), { timeoutMs: DEADLINE });
    assert.strictEqual(out.code, 'ESPIPE', JSON.stringify(out));
  });

  it('a file size limit (ulimit -f) below the image: EFBIG, not a result claiming bytes the file lacks', async () => {
    const dest = path.join(dir, `limited-${backend}`);
    const out = await runChildJson(snapshotSource(backend, dest, 1024), { timeoutMs: DEADLINE, ulimit: '-f 1024' }); // 1 MiB
    assert.strictEqual(out.code, 'EFBIG', JSON.stringify(out));
    assert.ok(out.fileSize < out.expected, JSON.stringify(out));
  });

  it('a full filesystem (a 1 MiB tmpfs in a private mount namespace): ENOSPC', async function () {
    if (!privileges.root) skipWithReason(this, 'mounting a tmpfs needs root');
    if (spawnSync('unshare', ['--mount', 'true']).status !== 0) skipWithReason(this, 'unshare --mount is refused here');
    const mnt = path.join(dir, `tmpfs-${backend}`);
    fs.mkdirSync(mnt);
    const dest = path.join(mnt, 'image');
    const node = JSON.stringify(process.execPath);
    const script = snapshotSource(backend, dest, 1024, '');
    const r = await runProcess('unshare', ['--mount', '--propagation', 'private', 'bash', '-c',
      `mount -t tmpfs -o size=1m none ${JSON.stringify(mnt)} && exec ${node} -e "$0"`, script], { timeoutMs: DEADLINE });
    assert.strictEqual(r.timedOut, false, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.strictEqual(out.code, 'ENOSPC', JSON.stringify(out));
  });
});
