// Privileges: as an unprivileged user (nobody) with vm.unprivileged_userfaultfd=0, open() fails
// with a clear EPERM that names the fix, { userModeOnly: true } works for faults raised in user
// mode, and backend 'auto' falls back to the simulator with the reason in probe().
// Needs root (to set the sysctl and drop to nobody) and setpriv; skipped with the reason otherwise.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { nativeProbe, simulatorProbe, runProcess, skipWithReason } = require('../helpers');

const SYSCTL = '/proc/sys/vm/unprivileged_userfaultfd';
const ROOT = path.resolve(__dirname, '../..');

function runAsNobody(dir, source, timeoutMs = 15000) {
  return runProcess('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', source], {
    cwd: dir, env: { PATH: process.env.PATH, HOME: '/tmp', PKG: dir }, inheritEnv: false, timeoutMs,
  });
}

const CHILD = `
const fs = require('fs');
const { Userfaultfd, Region, probe } = require(process.env.PKG + '/dist');
const out = { uid: process.getuid() };
try { Userfaultfd.open({ backend: 'native' }); out.open = 'opened'; }
catch (e) { out.open = { name: e.name, code: e.code, syscall: e.syscall, message: e.message }; }
const p = probe({ backend: 'native' });
out.nativeProbe = { available: p.available, unprivileged: p.unprivileged, reason: p.reason };
const a = probe();
out.autoProbe = { backend: a.backend, available: a.available, reason: a.reason };
try { out.autoOpen = Userfaultfd.open().backend; } catch (e) { out.autoOpen = { message: e.message }; }
(async () => {
  const uffd = Userfaultfd.open({ backend: 'native', userModeOnly: true });
  const region = Region.map(4 * 4096, { backend: 'native' });
  try {
    uffd.register(region);
    uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(4096, 0x5a)));
    const b = await region.read(4096, 16);        // a memcpy on a pool thread: a user-mode fault
    out.userModeRead = b.every((x) => x === 0x5a);
    // A fault raised in kernel mode (write(2) reading from a missing page) is not delivered to
    // a user-mode-only uffd: the syscall fails with EFAULT instead of waiting.
    const file = '/tmp/uffd-nobody-' + process.pid;
    const fd = fs.openSync(file, 'w');
    try { fs.writeSync(fd, new Uint8Array(region.buffer, 3 * 4096, 4096)); out.kernelMode = 'written'; }
    catch (e) { out.kernelMode = e.code; }
    fs.closeSync(fd);
    fs.unlinkSync(file);
  } finally { uffd.close(); region.unmap(); }
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ ...out, failed: e.stack })); });
`;

describe('reliability: privileges, native-only (nobody, vm.unprivileged_userfaultfd=0)', function () {
  this.timeout(30000);
  let saved = null;
  let dir = ROOT;
  let tmp = null;

  before(function () {
    const why = process.getuid() !== 0 ? 'needs root to set the sysctl and switch to nobody'
      : !nativeProbe.available ? `native backend unavailable (${nativeProbe.reason})`
        : !fs.existsSync(SYSCTL) ? `no ${SYSCTL}` : null;
    let setpriv = true;
    try { execFileSync('setpriv', ['--version'], { stdio: 'ignore' }); } catch { setpriv = false; }
    if (why || !setpriv) {
      skipWithReason(this, `${why || 'setpriv (util-linux) is not installed'}`);
    }
    saved = fs.readFileSync(SYSCTL, 'utf8').trim();
    if (saved !== '0') fs.writeFileSync(SYSCTL, '0');
    // nobody must be able to read the package: else copy what it needs to a temporary directory.
    try {
      execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
        `require(${JSON.stringify(path.join(ROOT, 'dist'))})`], { stdio: 'ignore' });
    } catch {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-nobody-'));
      for (const d of ['dist', 'build', 'package.json', 'node_modules/node-gyp-build']) {
        fs.cpSync(path.join(ROOT, d), path.join(tmp, d), { recursive: true });
      }
      execFileSync('chmod', ['-R', 'a+rX', tmp]);
      dir = tmp;
    }
  });

  after(() => {
    if (saved !== null && saved !== '0') fs.writeFileSync(SYSCTL, saved);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  let result;
  async function childResult() {
    if (!result) {
      const r = await runAsNobody(dir, CHILD);
      assert.strictEqual(r.timedOut, false, `hung: ${r.stdout}\n${r.stderr}`);
      assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
      result = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.strictEqual(result.uid, 65534);
      assert.strictEqual(result.failed, undefined, result.failed);
    }
    return result;
  }

  it('open() fails with EPERM, and the message names the fix', async () => {
    const r = await childResult();
    assert.strictEqual(r.open.name, 'UffdError');
    assert.strictEqual(r.open.code, 'EPERM');
    assert.strictEqual(r.open.syscall, 'userfaultfd');
    assert.match(r.open.message, /vm\.unprivileged_userfaultfd=1/);
    assert.match(r.open.message, /CAP_SYS_PTRACE/);
    assert.match(r.open.message, /userModeOnly: true/);
  });

  it('userModeOnly: true handles faults raised in user mode; kernel-mode faults fail with EFAULT, not a hang', async () => {
    const r = await childResult();
    assert.strictEqual(r.userModeRead, true);
    assert.strictEqual(r.kernelMode, 'EFAULT');
  });

  it("probe() says why the kernel is not used, and 'auto' falls back to the simulator", async function () {
    const r = await childResult();
    assert.strictEqual(r.nativeProbe.available, false);
    assert.strictEqual(r.nativeProbe.unprivileged, 'user-mode-only');
    assert.match(r.nativeProbe.reason, /EPERM/);
    assert.match(r.nativeProbe.reason, /userModeOnly: true/);
    assert.strictEqual(r.autoProbe.backend, 'simulator');
    assert.match(r.autoProbe.reason, /EPERM.*vm\.unprivileged_userfaultfd=1/);
    if (!simulatorProbe.available) {
      skipWithReason(this, `the simulator is not available here (${simulatorProbe.reason}), so 'auto' cannot open one`);
    }
    assert.strictEqual(r.autoOpen, 'simulator');
  });
});
