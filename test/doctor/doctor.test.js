// `userfaultfd doctor`: run as a user would, as root and as an unprivileged user with
// vm.unprivileged_userfaultfd at 0 and 1. The unprivileged runs use a copy of the package in a
// temporary directory that `nobody` can read (a CI checkout under /home may not be).
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { skipWithReason, requireHostSettings } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');
const SYSCTL = '/proc/sys/vm/unprivileged_userfaultfd';
const NOBODY = 65534;

function run(args, { asNobody = false, env = {}, cwd = ROOT } = {}) {
  const bin = path.join(cwd, 'bin', 'userfaultfd.js');
  const argv = asNobody
    ? ['--reuid=' + NOBODY, '--regid=' + NOBODY, '--clear-groups', process.execPath, bin, ...args]
    : [bin, ...args];
  const r = spawnSync(asNobody ? 'setpriv' : process.execPath, argv, {
    cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30000,
  });
  let json = null;
  if (args.includes('--json')) {
    try { json = JSON.parse(r.stdout); } catch (e) { /* asserted by the caller */ }
  }
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, json };
}

function attempt(report, method, userModeOnly) {
  return report.attempts.find((a) => a.method === method && a.userModeOnly === userModeOnly);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('doctor: npx userfaultfd doctor', function () {
  this.timeout(60000);

  it('prints usage for --help and exits 2 for an unknown command', function () {
    const help = run(['--help']);
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^Usage: userfaultfd \[doctor\]/);
    const bad = run(['frobnicate']);
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /unknown command 'frobnicate'/);
    // Every usage error: test/doctor/cli-errors.test.js.
    const badFlag = run(['doctor', '--nope']);
    assert.strictEqual(badFlag.code, 2);
  });

  it('--version prints the package version and exits 0', function () {
    const v = run(['--version']);
    assert.strictEqual(v.code, 0, v.stderr);
    assert.strictEqual(v.stdout.trim(), require('../../package.json').version);
  });

  it('reports the system, the kernel offer and the auto backend (JSON and text agree)', function () {
    if (process.platform !== 'linux') skipWithReason(this, `userfaultfd is Linux-only (this is ${process.platform})`);
    const r = run(['doctor', '--json']);
    assert.ok(r.json, `not JSON: ${r.stdout}${r.stderr}`);
    const j = r.json;
    assert.strictEqual(j.kernel.release, os.release());
    assert.strictEqual(j.arch, process.arch);
    assert.ok(j.pageSize >= 4096 && (j.pageSize & (j.pageSize - 1)) === 0);
    assert.strictEqual(j.addon.loaded, true);
    assert.match(j.addon.path, /\.node$/);
    assert.ok([0, 1, 2].includes(j.seccomp.mode));
    assert.strictEqual(typeof j.container.detected, 'boolean');
    assert.strictEqual(j.attempts.length, 4);
    assert.strictEqual(r.code, j.usable ? 0 : 1);
    const text = run(['doctor']);
    assert.strictEqual(text.code, r.code);
    assert.match(text.stdout, new RegExp(`architecture\\s+${process.arch}`));
    assert.match(text.stdout, /vm\.unprivileged_userfaultfd\s+\d/);
    assert.match(text.stdout, /'auto' picks\s+(native|simulator)/);
    assert.match(text.stdout, /Verdict: /);
  });

  describe('as root', function () {
    before(function () {
      if (!isRoot) skipWithReason(this, 'not running as root');
    });

    it('every way of opening works, CAP_SYS_PTRACE is seen, exit 0', function () {
      const r = run(['doctor', '--json']);
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      const j = r.json;
      assert.strictEqual(j.user.uid, 0);
      assert.strictEqual(j.user.capSysPtrace, true);
      assert.strictEqual(attempt(j, 'syscall', false).ok, true);
      assert.strictEqual(attempt(j, 'syscall', true).ok, true);
      assert.strictEqual(j.access, 'full');
      assert.strictEqual(j.usable, true);
      assert.strictEqual(j.native.available, true);
      assert.ok(j.native.features.includes('THREAD_ID'), j.native.features.join(' '));
      assert.ok(j.native.ioctls.includes('register'));
      assert.strictEqual(j.auto.backend, 'native');
      assert.deepStrictEqual(j.problems, []);
    });

    it('a missing addon is reported with the rebuild fix, exit 1', function () {
      // node-gyp-build looks in $USERFAULTFD_PREBUILD instead of the package when it is set.
      const r = run(['doctor', '--json'], { env: { USERFAULTFD_PREBUILD: path.join(os.tmpdir(), 'uffd-no-such-dir') } });
      assert.strictEqual(r.code, 1, r.stdout + r.stderr);
      assert.strictEqual(r.json.addon.loaded, false);
      assert.match(r.json.addon.error, /No native build was found/);
      assert.deepStrictEqual(r.json.attempts, []);
      assert.ok(r.json.problems.some((p) => /addon did not load/.test(p.problem) && p.fixes.some((f) => /npm rebuild userfaultfd/.test(f))));
    });
  });

  describe('under a seccomp filter that denies userfaultfd(2) (as Docker\'s default profile does)', function () {
    let deny = null;
    let dir = null;
    before(function () {
      if (process.platform !== 'linux') skipWithReason(this, `userfaultfd is Linux-only (this is ${process.platform})`);
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-seccomp-'));
      deny = path.join(dir, 'deny-userfaultfd');
      const cc = spawnSync('cc', ['-O2', '-o', deny, path.join(__dirname, 'deny-userfaultfd.c')], { encoding: 'utf8' });
      if (cc.status !== 0) {
        skipWithReason(this, `cannot compile the seccomp helper (${cc.error ? cc.error.code : cc.stderr.trim()})`);
      }
    });
    after(function () {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    function underFilter(errno) {
      const r = spawnSync(deny, [String(errno), process.execPath, path.join(ROOT, 'bin', 'userfaultfd.js'), 'doctor', '--json'],
        { cwd: ROOT, encoding: 'utf8', timeout: 30000 });
      return { code: r.status, json: JSON.parse(r.stdout), out: r.stdout + r.stderr };
    }

    it('EPERM from the filter: seccomp mode 2 is seen and blamed, not the sysctl; the fix is a seccomp profile', function () {
      const r = underFilter(1);
      const j = r.json;
      assert.strictEqual(j.seccomp.mode, 2);
      assert.ok(j.seccomp.filters >= 1);
      assert.strictEqual(attempt(j, 'syscall', false).code, 'EPERM');
      assert.strictEqual(attempt(j, 'syscall', true).code, 'EPERM');
      const p = j.problems.find((x) => /syscall is refused/.test(x.problem));
      assert.ok(p, JSON.stringify(j.problems));
      assert.match(p.problem, /under a seccomp filter/);
      assert.match(p.fixes.join('\n'), j.container.detected ? /--security-opt seccomp=/ : /seccomp filter that denies userfaultfd/);
      assert.doesNotMatch(p.fixes.join('\n'), /sysctl -w/);
      // The filter leaves /dev/userfaultfd alone: for root the device still gives a full uffd.
      if (isRoot && j.device.exists) {
        assert.strictEqual(r.code, 0, r.out);
        assert.strictEqual(j.native.via, 'dev-userfaultfd');
        assert.match(p.problem, /\/dev\/userfaultfd works/);
      }
    });

    it('ENOSYS from the filter is blamed on the filter too', function () {
      const j = underFilter(38).json;
      assert.strictEqual(attempt(j, 'syscall', false).code, 'ENOSYS');
      const p = j.problems.find((x) => /syscall is refused \(ENOSYS\)/.test(x.problem));
      assert.ok(p, JSON.stringify(j.problems));
      assert.match(p.problem, /under a seccomp filter/);
    });
    it('root with the syscall denied and no /dev/userfaultfd (Docker\'s default): the simulator, the reason and the fixes name both; exit 1', function () {
      if (!isRoot) skipWithReason(this, 'needs root to hide /dev/userfaultfd in a mount namespace');
      if (spawnSync('unshare', ['-m', 'true']).status !== 0) skipWithReason(this, 'unshare -m is refused here');
      const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /dev && exec "$@"', 'sh',
        deny, '1', process.execPath, path.join(ROOT, 'bin', 'userfaultfd.js'), 'doctor', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 30000 });
      assert.strictEqual(r.status, 1, r.stdout + r.stderr);
      const j = JSON.parse(r.stdout);
      assert.strictEqual(j.device.exists, false);
      assert.strictEqual(j.access, 'none');
      assert.strictEqual(j.auto.backend, 'simulator');
      assert.match(j.auto.reason, /denied by a seccomp filter/);
      assert.match(j.native.reason, /\/dev\/userfaultfd does not exist; fix: /);
      const text = j.problems.map((p) => `${p.problem}\n${p.fixes.join('\n')}`).join('\n');
      assert.match(text, /\/dev\/userfaultfd does not exist/);
      if (j.container.detected) {
        assert.match(text, /--security-opt seccomp=/);
        assert.match(text, /--device \/dev\/userfaultfd/);
      }
    });
  });

  describe('as an unprivileged user (setpriv --reuid=65534)', function () {
    let original = null;
    let copy = null;

    before(function () {
      if (process.platform !== 'linux' || !isRoot) {
        skipWithReason(this, 'needs root (to switch user and set the sysctl) on Linux');
      }
      if (spawnSync('setpriv', ['--version']).status !== 0) {
        skipWithReason(this, 'setpriv (util-linux) is not installed');
      }
      try {
        original = fs.readFileSync(SYSCTL, 'utf8').trim();
        fs.writeFileSync(SYSCTL, original);
      } catch (e) {
        original = null;
        skipWithReason(this, `cannot write ${SYSCTL} (${e.code})`);
      }
      // A copy nobody can read: dist/, bin/, package.json, the addon, node-gyp-build.
      copy = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-doctor-'));
      fs.cpSync(path.join(ROOT, 'dist'), path.join(copy, 'dist'), { recursive: true });
      fs.cpSync(path.join(ROOT, 'bin'), path.join(copy, 'bin'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
      const addon = require('node-gyp-build').path(ROOT);
      fs.mkdirSync(path.join(copy, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(addon, path.join(copy, 'build', 'Release', 'userfaultfd.node'));
      fs.cpSync(path.dirname(require.resolve('node-gyp-build/package.json')),
        path.join(copy, 'node_modules', 'node-gyp-build'), { recursive: true });
      spawnSync('chmod', ['-R', 'a+rX', copy]);
    });

    after(function () {
      if (original !== null && fs.readFileSync(SYSCTL, 'utf8').trim() !== original) fs.writeFileSync(SYSCTL, original);
      if (copy) fs.rmSync(copy, { recursive: true, force: true });
    });

    /** Sets the sysctl to `value` for the test; a change needs UFFD_TEST_HOST_SETTINGS=1. */
    function setSysctl(ctx, value) {
      if (fs.readFileSync(SYSCTL, 'utf8').trim() === value) return;
      requireHostSettings(ctx, `vm.unprivileged_userfaultfd (the test needs ${value}; it is ${original})`);
      fs.writeFileSync(SYSCTL, value);
    }

    it('vm.unprivileged_userfaultfd=0: syscall EPERM, device EACCES, user-mode-only works and open() falls back to it; fixes and limits named; exit 0 (--full: 1)', function () {
      setSysctl(this, '0');
      const r = run(['doctor', '--json'], { asNobody: true, cwd: copy });
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      const j = r.json;
      assert.strictEqual(j.user.uid, NOBODY);
      assert.strictEqual(j.user.capSysPtrace, false);
      assert.strictEqual(j.sysctl.unprivilegedUserfaultfd, 0);
      assert.deepStrictEqual(
        { ok: attempt(j, 'syscall', false).ok, code: attempt(j, 'syscall', false).code, errno: attempt(j, 'syscall', false).errno },
        { ok: false, code: 'EPERM', errno: 1 });
      assert.strictEqual(attempt(j, 'syscall', true).ok, true);
      const dev = attempt(j, 'dev-userfaultfd', false);
      if (j.device.exists && !j.device.accessible) {
        assert.strictEqual(dev.code, 'EACCES');
        assert.strictEqual(dev.syscall, 'open');
      }
      assert.strictEqual(j.access, 'user-mode-only');
      assert.strictEqual(j.usable, true);
      assert.strictEqual(j.auto.backend, 'native');
      assert.match(j.auto.reason, /only with UFFD_USER_MODE_ONLY: open\(\) falls back to it/);
      assert.strictEqual(j.native.userModeOnly, true);
      assert.match(j.native.reason, /fix: sudo sysctl -w vm\.unprivileged_userfaultfd=1/);
      const fixes = j.problems.flatMap((p) => p.fixes).join('\n');
      assert.match(fixes, /sysctl -w vm\.unprivileged_userfaultfd=1/);
      assert.match(fixes, /setfacl -m u:nobody:rw \/dev\/userfaultfd/);
      // What user-mode-only costs, and what keeps working.
      assert.match(fixes, /fs\.readSync into the memory.*EFAULT/);
      assert.match(fixes, /region\.read\/write, direct touches, serve\(\) and Workers work/);

      const text = run(['doctor'], { asNobody: true, cwd: copy });
      assert.strictEqual(text.code, 0);
      assert.match(text.stdout, /userfaultfd\(2\)\s+EPERM \(errno 1\)/);
      assert.match(text.stdout, /Verdict: the kernel path is usable, user-mode only/);

      const full = run(['doctor', '--full'], { asNobody: true, cwd: copy });
      assert.strictEqual(full.code, 1, full.stdout + full.stderr);
      assert.match(full.stdout, /NOT usable with a full userfaultfd/);
      const umo = run(['doctor', '--user-mode-only', '--json'], { asNobody: true, cwd: copy });
      assert.strictEqual(umo.code, 0, umo.stdout + umo.stderr);
      assert.strictEqual(umo.json.usable, true);
    });

    it('the advised setfacl on /dev/userfaultfd lets nobody open a full uffd through the device', function () {
      requireHostSettings(this, 'the ACL of /dev/userfaultfd');
      if (spawnSync('setfacl', ['--version']).status !== 0) {
        skipWithReason(this, 'setfacl (package acl) is not installed');
      }
      if (!fs.existsSync('/dev/userfaultfd')) {
        skipWithReason(this, 'no /dev/userfaultfd (Linux < 6.1)');
      }
      const hadAcl = spawnSync('getfacl', ['--skip-base', '/dev/userfaultfd'], { encoding: 'utf8' }).stdout.trim() !== '';
      setSysctl(this, '0');
      const set = spawnSync('setfacl', ['-m', 'u:nobody:rw', '/dev/userfaultfd'], { encoding: 'utf8' });
      if (set.status !== 0) {
        skipWithReason(this, `setfacl failed here (${set.stderr.trim()})`);
      }
      try {
        const r = run(['doctor', '--json'], { asNobody: true, cwd: copy });
        assert.strictEqual(r.code, 0, r.stdout + r.stderr);
        assert.strictEqual(attempt(r.json, 'syscall', false).code, 'EPERM');
        assert.strictEqual(attempt(r.json, 'dev-userfaultfd', false).ok, true);
        assert.strictEqual(r.json.native.via, 'dev-userfaultfd');
        assert.strictEqual(r.json.access, 'full');
        // And the library itself falls back to the device.
        const lib = spawnSync('setpriv', ['--reuid=' + NOBODY, '--regid=' + NOBODY, '--clear-groups', process.execPath, '-e',
          "const u = require('./dist').Userfaultfd.open(); console.log(u.fd >= 0); u.close()"], { cwd: copy, encoding: 'utf8', timeout: 30000 });
        assert.strictEqual(lib.status, 0, lib.stderr);
        assert.strictEqual(lib.stdout.trim(), 'true');
      } finally {
        spawnSync('setfacl', hadAcl ? ['-x', 'u:nobody', '/dev/userfaultfd'] : ['-b', '/dev/userfaultfd']);
      }
    });

    it('vm.unprivileged_userfaultfd=1: the syscall works for nobody; exit 0', function () {
      setSysctl(this, '1');
      const r = run(['doctor', '--json'], { asNobody: true, cwd: copy });
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      const j = r.json;
      assert.strictEqual(j.sysctl.unprivilegedUserfaultfd, 1);
      assert.strictEqual(attempt(j, 'syscall', false).ok, true);
      assert.strictEqual(j.access, 'full');
      assert.strictEqual(j.usable, true);
      assert.strictEqual(j.auto.backend, 'native');
      assert.ok(!j.problems.some((p) => /syscall is refused/.test(p.problem)));
      // EVENT_FORK still needs CAP_SYS_PTRACE: reported as a limit.
      assert.ok(j.problems.some((p) => /EVENT_FORK/.test(p.problem)));
    });
  });
});
