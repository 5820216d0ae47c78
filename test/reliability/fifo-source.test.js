// PageSource.file of a FIFO blocked the JS thread forever in open(2), on both backends. Files are
// opened with O_NONBLOCK, and anything but a regular file or a block device is refused with
// EINVAL (syscall 'open'). Cases that could block run in a child with a deadline.
const assert = require('assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { describeBackends, runChild, pattern, skipWithReason, PAGE } = require('../helpers');

function tryServe(backend, what) {
  return runChild(`
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const fs = require('fs');
    const region = Region.map(4 * ${PAGE}, { backend: '${backend}' });
    const uffd = Userfaultfd.open({ backend: '${backend}' });
    const out = {};
    try { uffd.serve(region, PageSource.file(${what})); out.served = true; } catch (e) { out.code = e.code; out.syscall = e.syscall; out.message = e.message; }
    uffd.close();
    console.log(JSON.stringify(out));`, { timeoutMs: 10000 });
}

describeBackends('reliability: file sources that are not files', (backend) => {
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fifo-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function expectRefused(r, name) {
    const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
    assert.strictEqual(r.timedOut, false, `blocked: ${info}`);
    const out = JSON.parse(r.stdout.trim());
    assert.strictEqual(out.code, 'EINVAL', info);
    assert.strictEqual(out.syscall, 'open');
    assert.ok(out.message.includes(name), out.message);
    assert.match(out.message, /not a regular file or a block device/);
  }

  it('a FIFO path with no writer is refused at once, not waited on', async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expectRefused(await tryServe(backend, JSON.stringify(fifo)), fifo);
  });

  it('an open FIFO fd and a character device (/dev/null) are refused', async () => {
    const fifo = path.join(dir, 'fifo2');
    execFileSync('mkfifo', [fifo]);
    expectRefused(await tryServe(backend, `fs.openSync(${JSON.stringify(fifo)}, 'r+')`), 'fd');
    expectRefused(await tryServe(backend, "'/dev/null'"), '/dev/null');
  });

  it('a block device is served, its bytes and its size (zeros past its end)', async function () {
    const file = path.join(dir, 'disk');
    fs.writeFileSync(file, pattern(2 * PAGE, 9));
    let dev;
    try {
      dev = execFileSync('losetup', ['-f', '--show', file], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
    } catch (e) {
      return skipWithReason(this, `no loop device to make a block device (${String(e.stderr || e.message).trim()})`);
    }
    try {
      const r = await runChild(`
        const { Userfaultfd, Region, PageSource } = require('./dist');
        const region = Region.map(4 * ${PAGE}, { backend: '${backend}' });
        const uffd = Userfaultfd.open({ backend: '${backend}' });
        uffd.serve(region, PageSource.file(${JSON.stringify(dev)}));
        region.read(0, 4 * ${PAGE}).then((b) => { console.log(b.toString('hex')); uffd.close(); });`, { timeoutMs: 10000 });
      assert.strictEqual(r.code, 0, r.stderr);
      const expected = Buffer.concat([pattern(2 * PAGE, 9), Buffer.alloc(2 * PAGE)]);
      assert.ok(Buffer.from(r.stdout.trim(), 'hex').equals(expected), 'the block device bytes, then zeros');
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
  });
});
