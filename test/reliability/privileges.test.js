// Privileges: as an unprivileged user (nobody) with vm.unprivileged_userfaultfd=0, open() with
// backend 'auto' reaches the kernel through UFFD_USER_MODE_ONLY and says so once; a missing page
// touched inside a system call fails with EFAULT, everything else works; where the kernel refuses
// every uffd (a seccomp filter as Docker's default profile, no /dev/userfaultfd), 'auto' serves
// from the simulator and says why and how to fix it, once.
// As root the children are switched to nobody (setpriv) with the sysctl set to 0 (restored
// after); run as an unprivileged user already (.ci/unprivileged), they run as that user.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { runProcess, skipWithReason, requirePrivileged, privileges, describeNative, requireHostSettings } = require('../helpers');

const SYSCTL = '/proc/sys/vm/unprivileged_userfaultfd';
const ROOT = path.resolve(__dirname, '../..');
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

// The child's prelude: the package, its warnings, and one JSON line out.
const PRELUDE = `
const fs = require('fs');
const { Userfaultfd, Region, PageSource, probe } = require(process.env.PKG + '/dist');
const out = { uid: process.getuid(), warnings: [], sysctl: fs.readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() };
process.on('warning', (w) => out.warnings.push({ code: w.code, message: w.message, detail: w.detail }));
const done = () => setImmediate(() => console.log(JSON.stringify(out)));
const fail = (e) => { out.failed = e.stack; done(); };
`;

describeNative('reliability: privileges (nobody, vm.unprivileged_userfaultfd=0)', function () {
  this.timeout(60000);
  let saved = null;
  let dir = ROOT;
  let tmp = null;
  let asRoot = false;
  let deny = null;

  before(function () {
    asRoot = privileges.root;
    if (!asRoot && privileges.uffd) {
      skipWithReason(this, `this user already has a full userfaultfd (${privileges.summary}): nothing to fall back from`);
    }
    if (asRoot) {
      if (spawnSync('setpriv', ['--version']).status !== 0) skipWithReason(this, 'setpriv (util-linux) is not installed');
      if (!fs.existsSync(SYSCTL)) skipWithReason(this, `no ${SYSCTL}`);
      saved = fs.readFileSync(SYSCTL, 'utf8').trim();
      if (saved !== '0') {
        requireHostSettings(this, `vm.unprivileged_userfaultfd (these tests need 0; it is ${saved})`);
        fs.writeFileSync(SYSCTL, '0');
      }
      // nobody must be able to read the package: else copy what it needs to a temporary directory.
      const probeRead = spawnSync('setpriv', [...NOBODY, process.execPath, '-e', `require(${JSON.stringify(path.join(ROOT, 'dist'))})`]);
      if (probeRead.status !== 0) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-nobody-'));
        for (const d of ['dist', 'build', 'package.json', 'node_modules/node-gyp-build']) {
          fs.cpSync(path.join(ROOT, d), path.join(tmp, d), { recursive: true });
        }
        execFileSync('chmod', ['-R', 'a+rX', tmp]);
        dir = tmp;
      }
    }
    // The seccomp helper (test/doctor/deny-userfaultfd.c), where a compiler is at hand.
    const build = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-deny-'));
    fs.chmodSync(build, 0o755);
    const cc = spawnSync('cc', ['-O2', '-o', path.join(build, 'deny'), path.join(ROOT, 'test', 'doctor', 'deny-userfaultfd.c')]);
    deny = cc.status === 0 ? path.join(build, 'deny') : null;
    if (deny === null) fs.rmSync(build, { recursive: true, force: true });
  });

  after(() => {
    if (saved !== null && saved !== '0') fs.writeFileSync(SYSCTL, saved);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (deny) fs.rmSync(path.dirname(deny), { recursive: true, force: true });
  });

  /** Runs PRELUDE + `body` in node as the unprivileged user, `wrap` before node; returns its JSON. */
  async function unprivileged(body, { wrap = [], asIs = false } = {}) {
    const argv = [...wrap, process.execPath, '-e', PRELUDE + body];
    const [file, ...args] = asRoot && !asIs ? ['setpriv', ...NOBODY, ...argv] : argv;
    const r = await runProcess(file, args, {
      cwd: dir, env: { PATH: process.env.PATH, HOME: os.tmpdir(), PKG: dir }, inheritEnv: false, timeoutMs: 30000,
    });
    assert.strictEqual(r.timedOut, false, `hung: ${r.stdout}\n${r.stderr}`);
    assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.strictEqual(out.failed, undefined, out.failed);
    return { ...out, stderr: r.stderr };
  }

  /** The sysctl is machine-wide: another process (a concurrent test run as root) may set it. */
  function requireSysctl0(ctx, r) {
    if (r.sysctl !== '0' || r.sysctlChanged) {
      skipWithReason(ctx, 'another process set vm.unprivileged_userfaultfd to 1 while this test ran');
    }
  }

  function needDeny(ctx) {
    if (!deny) skipWithReason(ctx, 'cannot compile test/doctor/deny-userfaultfd.c with cc');
  }

  it("open() falls back to UFFD_USER_MODE_ONLY: uffd.userModeOnly, one USERFAULTFD_USER_MODE_ONLY warning, Region.map on the same backend", async function () {
    const r = await unprivileged(`
      const uffd = Userfaultfd.open();
      const again = Userfaultfd.open();
      const region = Region.map(4 * 4096);
      Object.assign(out, { backend: uffd.backend, userModeOnly: uffd.userModeOnly, again: again.userModeOnly, mapped: region.backend });
      again.close();
      uffd.register(region);
      uffd.on('pagefault', (e) => uffd.copy(e.address, Buffer.alloc(4096, 0x5a)));
      region.read(4096, 16).then((b) => { out.read = [...b]; uffd.close(); region.unmap(); done(); }, fail);`);
    requireSysctl0(this, r);
    assert.notStrictEqual(r.uid, 0);
    assert.deepStrictEqual([r.backend, r.userModeOnly, r.again, r.mapped], ['native', true, true, 'native']);
    assert.deepStrictEqual(r.read, new Array(16).fill(0x5a));
    assert.deepStrictEqual(r.warnings.map((w) => w.code), ['USERFAULTFD_USER_MODE_ONLY']);
    const [w] = r.warnings;
    assert.match(w.message, /UFFD_USER_MODE_ONLY/);
    assert.match(w.message, /EFAULT/);
    assert.match(w.detail, /vm\.unprivileged_userfaultfd=1/);
    assert.match(w.detail, /userModeOnly: true/);
  });

  it("{ userModeOnly: true } with 'auto' uses the kernel without a warning; { userModeOnly: false } throws EPERM naming the fixes, EVENT_FORK too", async function () {
    const r = await unprivileged(`
      const u = Userfaultfd.open({ userModeOnly: true });
      Object.assign(out, { backend: u.backend, userModeOnly: u.userModeOnly, fd: u.fd >= 0 });
      u.close();
      try { Userfaultfd.open({ userModeOnly: false }); out.full = 'opened'; }
      catch (e) { out.full = { name: e.name, code: e.code, syscall: e.syscall, message: e.message }; }
      try { Userfaultfd.open({ features: ['EVENT_FORK'], userModeOnly: true }); out.fork = 'opened'; }
      catch (e) { out.fork = { code: e.code, syscall: e.syscall, message: e.message }; }
      done();`);
    requireSysctl0(this, r);
    assert.deepStrictEqual([r.backend, r.userModeOnly, r.fd], ['native', true, true]);
    assert.deepStrictEqual(r.warnings, []);
    assert.deepStrictEqual([r.full.name, r.full.code, r.full.syscall], ['UffdError', 'EPERM', 'userfaultfd']);
    assert.match(r.full.message, /vm\.unprivileged_userfaultfd=1/);
    assert.match(r.full.message, /CAP_SYS_PTRACE/);
    assert.deepStrictEqual([r.fork.code, r.fork.syscall], ['EPERM', 'UFFDIO_API']);
    assert.match(r.fork.message, /EVENT_FORK needs CAP_SYS_PTRACE/);
  });

  it("probe() says what 'auto' does: the kernel, user-mode only, with the reason and the fix", async function () {
    const r = await unprivileged(`
      const pick = ({ backend, available, userModeOnly, reason, unprivileged }) => ({ backend, available, userModeOnly, reason, unprivileged });
      Object.assign(out, { auto: pick(probe()), native: pick(probe({ backend: 'native' })) });
      done();`);
    requireSysctl0(this, r);
    assert.deepStrictEqual(r.auto, r.native);
    assert.strictEqual(r.auto.backend, 'native');
    assert.strictEqual(r.auto.available, true);
    assert.strictEqual(r.auto.userModeOnly, true);
    assert.strictEqual(r.auto.unprivileged, 'user-mode-only');
    assert.match(r.auto.reason, /EPERM: \S+ has no CAP_SYS_PTRACE and vm\.unprivileged_userfaultfd is 0/);
    assert.match(r.auto.reason, /EFAULT/);
    assert.match(r.auto.reason, /fix: sudo sysctl -w vm\.unprivileged_userfaultfd=1/);
    assert.deepStrictEqual(r.warnings, [], 'probe() alone warns about nothing');
  });

  it('a missing page touched inside a system call fails with EFAULT (fs.readSync into it, fs.writeSync from it); present, both work', async function () {
    const r = await unprivileged(`
      const uffd = Userfaultfd.open();
      const region = Region.map(4 * 4096);
      uffd.register(region);
      uffd.on('pagefault', (e) => { out.faults = (out.faults || 0) + 1; uffd.copy(e.address, Buffer.alloc(4096, 0x5a)); });
      const file = require('os').tmpdir() + '/uffd-efault-' + process.pid;
      const fd = fs.openSync(file, 'w+');
      fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 0);
      const page = (i) => new Uint8Array(region.buffer, i * 4096, 4096);
      // With a full uffd (the sysctl changed underneath) the JS thread would fault on its own handler.
      out.sysctlChanged = !uffd.userModeOnly;
      const code = (f) => { if (out.sysctlChanged) return 'not tried'; try { return f(); } catch (e) { return e.code; } };
      out.readSync = code(() => fs.readSync(fd, page(1), 0, 4096, 0));
      out.writeSync = code(() => fs.writeSync(fd, page(2), 0, 4096, 0));
      (async () => {
        await region.write(1 * 4096, Buffer.alloc(4096, 1));   // faulted in on the thread pool
        await region.read(2 * 4096, 1);
        out.readSyncPresent = fs.readSync(fd, page(1), 0, 4096, 0);
        out.page1 = [...new Set(page(1))];
        out.writeSyncPresent = fs.writeSync(fd, page(2), 0, 4096, 0);
        const back = Buffer.alloc(4096);
        fs.readSync(fd, back, 0, 4096, 0);
        out.file = [...new Set(back)];
        fs.closeSync(fd); fs.unlinkSync(file);
        uffd.close(); region.unmap(); done();
      })().catch(fail);`);
    requireSysctl0(this, r);
    assert.strictEqual(r.readSync, 'EFAULT');
    assert.strictEqual(r.writeSync, 'EFAULT');
    assert.strictEqual(r.faults, 2, 'only the thread-pool touches faulted');
    assert.strictEqual(r.readSyncPresent, 4096);
    assert.deepStrictEqual(r.page1, [7]);
    assert.strictEqual(r.writeSyncPresent, 4096);
    assert.deepStrictEqual(r.file, [0x5a]);
  });

  it('what keeps working: direct touches of served memory (file source, pread and mmap), and a handler in a Worker', async function () {
    const r = await unprivileged(`
      const { Worker } = require('worker_threads');
      const file = require('os').tmpdir() + '/uffd-served-' + process.pid;
      const bytes = Buffer.alloc(8 * 4096 + 100);   // a partial last page too
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
      fs.writeFileSync(file, bytes);
      out.served = {};
      for (const mode of ['pread', 'mmap']) {
        const uffd = Userfaultfd.open();
        const region = Region.map(9 * 4096);
        uffd.serve(region, PageSource.file(file, { mode }));
        const view = new Uint8Array(region.buffer);                  // main thread, user mode
        out.served[mode] = Buffer.from(view.subarray(0, bytes.length)).equals(bytes) &&
          view.subarray(bytes.length).every((x) => x === 0) && uffd.stats().faults > 0;
        uffd.close(); region.unmap();
      }
      fs.unlinkSync(file);
      const uffd = Userfaultfd.open();
      const region = Region.map(4 * 4096);
      uffd.register(region);
      const worker = new Worker(\`
        const { parentPort, workerData } = require('worker_threads');
        const u = require(workerData.pkg + '/dist').Userfaultfd.fromFd(workerData.fd);
        u.on('pagefault', (e) => u.copy(e.address, Buffer.alloc(4096, 0x33)));
        parentPort.postMessage('ready');\`, { eval: true, workerData: { fd: uffd.fd, pkg: process.env.PKG } });
      worker.once('message', async () => {
        out.workerTouch = new Uint8Array(region.buffer)[2 * 4096 + 5];  // answered by the Worker
        await worker.terminate();
        uffd.close(); region.unmap(); done();
      });
      worker.once('error', fail);`);
    requireSysctl0(this, r);
    assert.deepStrictEqual(r.served, { pread: true, mmap: true });
    assert.strictEqual(r.workerTouch, 0x33);
  });

  it("under a seccomp filter that denies userfaultfd (Docker's default profile): 'auto' uses the simulator, with one USERFAULTFD_SIMULATOR warning naming the reason and the fix", async function () {
    needDeny(this);
    const r = await unprivileged(`
      const p = probe();
      Object.assign(out, { probe: { backend: p.backend, available: p.available, reason: p.reason } });
      const uffd = Userfaultfd.open();
      const region = Region.map(4096);
      const again = Userfaultfd.open();
      Object.assign(out, { backend: uffd.backend, mapped: region.backend, again: again.backend });
      uffd.close(); again.close(); region.unmap();
      try { Userfaultfd.open({ backend: 'native' }); } catch (e) { out.native = { code: e.code, message: e.message }; }
      done();`, { wrap: [deny, '1'] });
    assert.deepStrictEqual([r.backend, r.mapped, r.again], ['simulator', 'simulator', 'simulator']);
    assert.strictEqual(r.probe.backend, 'simulator');
    assert.match(r.probe.reason, /denied by a seccomp filter \(Seccomp: 2/);
    assert.match(r.probe.reason, /EPERM even with UFFD_USER_MODE_ONLY/);
    assert.match(r.probe.reason, /\/dev\/userfaultfd is not open to \S+ \(EACCES\)/);
    assert.match(r.probe.reason, /fix: .*seccomp/);
    assert.deepStrictEqual(r.warnings.map((w) => w.code), ['USERFAULTFD_SIMULATOR']);
    const [w] = r.warnings;
    assert.match(w.message, /using the simulator backend because .*seccomp filter/);
    assert.match(w.detail, /^Fix: .*seccomp/);
    assert.match(w.detail, /setfacl -m u:\S+:rw \/dev\/userfaultfd/);
    assert.strictEqual(r.native.code, 'EPERM');
    assert.match(r.native.message, /seccomp/);
  });

  it('root in a container with Docker\'s default seccomp profile and no /dev/userfaultfd: the reason names both, the fixes are a profile and --device', async function () {
    requirePrivileged(this, 'hiding /dev/userfaultfd in a mount namespace', 'root');
    needDeny(this);
    if (spawnSync('unshare', ['-m', 'true']).status !== 0) skipWithReason(this, 'unshare -m is refused here');
    const hideDev = ['unshare', '-m', 'sh', '-c', 'mount -t tmpfs none /dev && exec "$@"', 'sh', deny, '1'];
    const r = await unprivileged(`
      const p = probe();
      Object.assign(out, { probe: { backend: p.backend, reason: p.reason } });
      out.backend = Userfaultfd.open().backend;
      done();`, { wrap: hideDev, asIs: true });
    assert.strictEqual(r.uid, 0);
    assert.strictEqual(r.backend, 'simulator');
    assert.match(r.probe.reason, /denied by a seccomp filter/);
    assert.match(r.probe.reason, /\/dev\/userfaultfd does not exist/);
    assert.deepStrictEqual(r.warnings.map((w) => w.code), ['USERFAULTFD_SIMULATOR']);
    // This machine's tests run in a container (.dockerenv); outside one, the advice is generic.
    if (fs.existsSync('/.dockerenv')) {
      assert.match(r.probe.reason, /--security-opt seccomp=/);
      assert.match(r.probe.reason, /--device \/dev\/userfaultfd/);
    }
  });
});
