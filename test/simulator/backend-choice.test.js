// Simulator-only: which backend 'auto' picks and why, the environment override, the warning
// when the addon fails to load on Linux, and the simulator's own probe and constants.
const assert = require('assert');
const { probe, constants, FEATURE_NAMES } = require('../../dist');
const { FALLBACK_CONSTANTS } = require('../../dist/base/constants');
const { binding } = require('../../dist/base/native');
const { runChild, skipWithReason, requirePrivileged, describeNative } = require('../helpers');

/** Runs `body` in a child after `setup`, printing JSON on stdout; returns { out, stderr, code }. */
async function child(body, { env = {}, setup = '' } = {}) {
  const r = await runChild(`${setup}
    const u = require('./dist');
    const out = {};
    ${body}
    console.log(JSON.stringify(out));`, { env: { USERFAULTFD_BACKEND: '', ...env } });
  assert.strictEqual(r.timedOut, false);
  assert.strictEqual(r.code, 0, r.stderr);
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()), stderr: r.stderr };
}

/** Makes require('node-gyp-build') throw, as a missing or broken build would. */
const failAddonLoad = `
  const Module = require('module');
  const load = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'node-gyp-build') throw new Error('simulated: No native build was found');
    return load.call(this, request, ...rest);
  };`;

const report = `
  const p = u.probe();
  Object.assign(out, { backend: p.backend, available: p.available, reason: p.reason });
  const uffd = u.Userfaultfd.open();
  const region = u.Region.map(4096);
  out.opened = uffd.backend;
  out.mapped = region.backend;
  uffd.close();
  region.unmap();`;

describe('simulator: probe and constants', () => {
  it("probe({ backend: 'simulator' }) is available with every feature (EVENT_FORK and EVENT_REMAP too: their events never occur)", () => {
    const p = probe({ backend: 'simulator' });
    assert.strictEqual(p.backend, 'simulator');
    assert.strictEqual(p.available, true);
    assert.strictEqual(p.api, 0xaa);
    assert.deepStrictEqual(p.features, FEATURE_NAMES);
    assert.strictEqual(p.features.length, 17);
    assert.deepStrictEqual(p.ioctls, ['register', 'unregister', 'api']);
    assert.strictEqual(p.pageSize, constants.pageSize);
  });

  it('FALLBACK_CONSTANTS equal the table the addon was built with', function () {
    if (!binding) skipWithReason(this, 'the native addon is not loaded here');
    assert.deepStrictEqual(FALLBACK_CONSTANTS, binding.constants);
  });
});

// The simulator beside this machine's kernel: what it must match, and when 'auto' prefers the kernel.
describeNative('simulator: beside the kernel', function () {
  this.timeout(60000);

  it("the simulator's ioctls answer matches the kernel's", function () {
    assert.deepStrictEqual(probe({ backend: 'simulator' }).ioctls, probe({ backend: 'native' }).ioctls);
  });

  it("'auto' uses the kernel on this Linux machine", async function () {
    requirePrivileged(this, 'a silent open (user-mode-only warns; test/reliability/privileges.test.js covers that)');
    const { out, stderr } = await child(report);
    assert.deepStrictEqual([out.backend, out.available, out.opened, out.mapped], ['native', true, 'native', 'native']);
    assert.strictEqual(stderr, '');
  });
});

describe('simulator: backend choice', function () {
  this.timeout(60000);

  it('USERFAULTFD_BACKEND=simulator forces the simulator, says so, and warns about nothing', async () => {
    const { out, stderr } = await child(report, { env: { USERFAULTFD_BACKEND: 'simulator' } });
    assert.deepStrictEqual([out.backend, out.available, out.opened, out.mapped], ['simulator', true, 'simulator', 'simulator']);
    assert.strictEqual(out.reason, 'USERFAULTFD_BACKEND=simulator');
    assert.strictEqual(stderr, '');
  });

  it('the backend option beats the environment', async () => {
    const { out } = await child(`
      out.a = u.Userfaultfd.open({ backend: 'simulator' }).backend;
      out.b = u.Region.map(4096, { backend: 'simulator' }).backend;`, { env: { USERFAULTFD_BACKEND: 'native' } });
    assert.deepStrictEqual([out.a, out.b], ['simulator', 'simulator']);
  });

  it('an addon that fails to load on Linux: auto falls back to the simulator with a warning', async function () {
    if (process.platform !== 'linux') skipWithReason(this, `userfaultfd is Linux-only (this is ${process.platform})`);
    const { out, stderr } = await child(`${report}
      out.native = u.probe({ backend: 'native' });
      try { u.Userfaultfd.open({ backend: 'native' }); } catch (e) { out.nativeError = { code: e.code, message: e.message }; }`,
    { setup: failAddonLoad });
    assert.deepStrictEqual([out.backend, out.available, out.opened, out.mapped], ['simulator', true, 'simulator', 'simulator']);
    assert.match(out.reason, /the native addon failed to load: simulated: No native build was found/);
    assert.strictEqual(out.native.available, false);
    assert.strictEqual(out.nativeError.code, 'ERR_UFFD_UNAVAILABLE');
    assert.match(out.nativeError.message, /simulated: No native build was found/);
    // One warning, however many times 'auto' chose.
    const warnings = stderr.split('\n').filter((l) => l.includes('USERFAULTFD_NATIVE_UNAVAILABLE'));
    assert.strictEqual(warnings.length, 1, stderr);
    assert.match(stderr, /using the simulator backend because the native addon failed to load/);
  });

  it('a failed load with USERFAULTFD_BACKEND=simulator is a choice: no warning', async () => {
    const { out, stderr } = await child(report, { setup: failAddonLoad, env: { USERFAULTFD_BACKEND: 'simulator' } });
    assert.strictEqual(out.opened, 'simulator');
    assert.strictEqual(stderr, '');
  });

  it('syscall and /dev/userfaultfd both refused: the simulator, and the errno in the reason', async function () {
    if (!binding) skipWithReason(this, 'the native addon is not loaded here');
    const setup = `
      const { binding } = require('./dist/base/native');
      const { UffdError } = require('./dist/base/errors');
      binding.openSyscall = () => { throw new UffdError('EPERM: userfaultfd failed: Operation not permitted', 'EPERM', 1, 'userfaultfd'); };
      binding.openDevice = () => { throw new UffdError('EACCES: open failed: Permission denied (/dev/userfaultfd)', 'EACCES', 13, 'open'); };`;
    const { out, stderr } = await child(report, { setup });
    assert.deepStrictEqual([out.backend, out.opened], ['simulator', 'simulator']);
    assert.match(out.reason, /^userfaultfd refused: .*\(EPERM, and EPERM even with UFFD_USER_MODE_ONLY\).*\/dev\/userfaultfd .*\(EACCES\); fix: /);
    assert.strictEqual(stderr.split('\n').filter((l) => l.includes('USERFAULTFD_SIMULATOR')).length, 1, stderr);
  });

  it('not Linux: the simulator, and the platform in the reason', async () => {
    const setup = "Object.defineProperty(process, 'platform', { value: 'darwin' });";
    const { out, stderr } = await child(report, { setup });
    assert.deepStrictEqual([out.backend, out.opened, out.mapped], ['simulator', 'simulator', 'simulator']);
    assert.strictEqual(out.reason, 'userfaultfd is Linux-only (this is darwin)');
    assert.strictEqual(stderr, '');
  });
});

describe("simulator: 'auto' falling back refuses what the simulator cannot model", function () {
  this.timeout(60000);

  it("onSelfFault 'sigbus' is ERR_UFFD_UNSUPPORTED (it would read zeros silently); EVENT_FORK and EVENT_REMAP open, as kernel code asks", async () => {
    const setup = "Object.defineProperty(process, 'platform', { value: 'darwin' });";
    const { out } = await child(`
      out.backend = u.probe().backend;
      out.offered = u.probe().features;
      out.opened = [];
      for (const options of [{ features: ['EVENT_FORK'] }, { features: ['EVENT_REMOVE', 'EVENT_REMAP'] }, { onSelfFault: 'sigbus' }]) {
        try { const x = u.Userfaultfd.open(options); out.opened.push(x.features); x.close(); } catch (e) {
          out.opened.push({ code: e.code, feature: e.feature, option: e.option, backend: e.backend, message: e.message });
        }
      }
      out.other = u.Userfaultfd.open({ features: ['EVENT_REMOVE', 'EVENT_UNMAP'], onSelfFault: 'source' }).features;`, { setup });
    assert.strictEqual(out.backend, 'simulator');
    assert.ok(out.offered.includes('EVENT_FORK') && out.offered.includes('EVENT_REMAP'), out.offered.join());
    const [fork, remap, sigbus] = out.opened;
    assert.deepStrictEqual(fork, ['EVENT_FORK', 'THREAD_ID']);
    assert.deepStrictEqual(remap, ['EVENT_REMAP', 'EVENT_REMOVE', 'THREAD_ID']);
    assert.deepStrictEqual([sigbus.code, sigbus.option, sigbus.backend], ['ERR_UFFD_UNSUPPORTED', 'onSelfFault', 'simulator']);
    assert.match(sigbus.message, /onSelfFault 'sigbus'/);
    assert.deepStrictEqual(out.other, ['EVENT_REMOVE', 'EVENT_UNMAP', 'THREAD_ID']);
  });
});
