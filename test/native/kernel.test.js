// Issue 2, what only the kernel shows: its own EINVAL for misalignment through the raw binding,
// the exact ioctl masks, SIGBUS killing a process, hugetlb, and junk given straight to the binding.
const assert = require('assert');
const fs = require('fs');
const { Userfaultfd, Region, UffdError, probe, constants } = require('../../dist');
const { binding } = require('../../dist/base/native');
const { nativeProbe, requireFeature, runChild, pattern, PAGE, describeNative, skipWithReason, requirePrivileged, perTestUffd,
  requireHostSettings, reserveHugePages, hugePagePool } = require('../helpers');

const HUGE = 2 * 1024 * 1024;
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';
const M = constants.modes;


/** A bare binding.Userfaultfd after the API handshake, with `features`. */
function rawUffd(features = 0) {
  const fd = binding.openSyscall(nativeProbe.userModeOnly === true);
  binding.apiHandshake(fd, features);
  return new binding.Userfaultfd(fd, features);
}

function throwsErrno(fn, code, syscall) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof UffdError, String(e));
    assert.strictEqual(e.code, code, e.message);
    assert.strictEqual(e.syscall, syscall);
    return true;
  });
}

describeNative('the kernel\'s own errors through the raw binding', () => {
  let raw, region, shared, src;
  const map = perTestUffd('native');
  beforeEach(() => {
    raw = map.closeAfter(rawUffd(constants.features.MOVE | constants.features.POISON));
    region = map(4);
    shared = map(2, { shared: true });
    src = map(1);
  });

  it('misaligned start or length is EINVAL for every range ioctl', () => {
    const a = region.address;
    throwsErrno(() => raw.register(a + 1n, PAGE, M.REGISTER_MISSING), 'EINVAL', 'UFFDIO_REGISTER');
    throwsErrno(() => raw.register(a, PAGE + 1, M.REGISTER_MISSING), 'EINVAL', 'UFFDIO_REGISTER');
    throwsErrno(() => raw.register(a, 0, M.REGISTER_MISSING), 'EINVAL', 'UFFDIO_REGISTER');
    raw.register(a, 4 * PAGE, M.REGISTER_MISSING | M.REGISTER_WP);
    throwsErrno(() => raw.unregister(a + 8n, PAGE), 'EINVAL', 'UFFDIO_UNREGISTER');
    throwsErrno(() => raw.copy(a + 8n, pattern(PAGE), 0), 'EINVAL', 'UFFDIO_COPY');
    throwsErrno(() => raw.copy(a, pattern(PAGE + 1), 0), 'EINVAL', 'UFFDIO_COPY');
    throwsErrno(() => raw.zeropage(a + 8n, PAGE, 0), 'EINVAL', 'UFFDIO_ZEROPAGE');
    throwsErrno(() => raw.zeropage(a, 100, 0), 'EINVAL', 'UFFDIO_ZEROPAGE');
    throwsErrno(() => raw.wake(a + 8n, PAGE), 'EINVAL', 'UFFDIO_WAKE');
    throwsErrno(() => raw.writeProtect(a + 8n, PAGE, M.WRITEPROTECT_WP), 'EINVAL', 'UFFDIO_WRITEPROTECT');
    throwsErrno(() => raw.poison(a + 8n, PAGE, 0), 'EINVAL', 'UFFDIO_POISON');
    throwsErrno(() => raw.move(a + 8n, src.address, PAGE, 0), 'EINVAL', 'UFFDIO_MOVE');
    throwsErrno(() => raw.move(a, src.address, 100, 0), 'EINVAL', 'UFFDIO_MOVE');
    raw.register(shared.address, 2 * PAGE, M.REGISTER_MINOR);
    throwsErrno(() => raw.continue(shared.address + 8n, PAGE, 0), 'EINVAL', 'UFFDIO_CONTINUE');
  });

  it('bad modes are EINVAL: register mode 0 or unknown, writeProtect WP|DONTWAKE', () => {
    const a = region.address;
    throwsErrno(() => raw.register(a, PAGE, 0), 'EINVAL', 'UFFDIO_REGISTER');
    throwsErrno(() => raw.register(a, PAGE, 8), 'EINVAL', 'UFFDIO_REGISTER');
    raw.register(a, PAGE, M.REGISTER_MISSING | M.REGISTER_WP);
    raw.zeropage(a, PAGE, 0);
    throwsErrno(() => raw.writeProtect(a, PAGE, M.WRITEPROTECT_WP | M.WRITEPROTECT_DONTWAKE), 'EINVAL', 'UFFDIO_WRITEPROTECT');
  });

  it('register returns the exact masks: 0x13c for MISSING, 0x17c for MISSING|WP (anonymous)', () => {
    assert.strictEqual(raw.register(region.address, PAGE, M.REGISTER_MISSING), 0x13cn);
    assert.strictEqual(raw.register(region.address + BigInt(PAGE), PAGE, M.REGISTER_MISSING | M.REGISTER_WP), 0x17cn);
  });

  it('junk straight into the binding throws and never crashes', () => {
    const junk = [undefined, null, -1, 1.5, NaN, 'x', {}, [], -1n, 1n << 70n, Symbol('s')];
    const calls = [
      (v) => raw.register(v, PAGE, 1), (v) => raw.register(region.address, v, 1),
      (v) => raw.copy(v, pattern(PAGE), 0), (v) => raw.copy(region.address, v, 0),
      (v) => raw.copyFromAddress(region.address, v, PAGE, 0),
      (v) => raw.zeropage(v, PAGE, 0), (v) => raw.wake(region.address, v),
      (v) => raw.move(region.address, v, PAGE, 0), (v) => raw.setSelfFaultPolicy(v),
      (v) => raw.startReader(v, new Uint8Array(40)), (v) => raw.startReader(() => {}, v),
      (v) => raw.serve(region.address, PAGE, v, null, 0, 0, false),
      (v) => raw.serve(region.address, PAGE, 1, v, 0, 0, false),
      (v) => new binding.Region(v, false, false), (v) => new binding.Userfaultfd(v, 0),
      (v) => binding.apiHandshake(v, 0), (v) => binding.closeFd(v), (v) => new binding.Userfaultfd(v, 0, false, true),
    ];
    for (const call of calls) for (const v of junk) assert.throws(() => call(v), undefined, `${call} with ${String(v)}`);
    assert.strictEqual(raw.unserve(12345), false);
    // The native object closes its fd when collected: it adopts nothing but a userfaultfd.
    assert.throws(() => new binding.Userfaultfd(0, 0), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new binding.Userfaultfd(1, 0), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new binding.Userfaultfd(99999, 0), { code: 'ERR_OUT_OF_RANGE' });
    // A source buffer can be emptied; the binding refuses it rather than copy from nowhere.
    assert.throws(() => raw.copy(region.address, new Uint8Array(0), 0), { code: 'ERR_OUT_OF_RANGE' });
    // A closed raw uffd refuses everything with a RangeError.
    raw.close();
    assert.throws(() => raw.register(region.address, PAGE, 1), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => raw.copy(region.address, pattern(PAGE), 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => raw.startReader(() => {}, new Uint8Array(40)), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('an API handshake asking for an unknown feature bit is EINVAL; a second handshake too', () => {
    const fd = binding.openSyscall(nativeProbe.userModeOnly === true);
    try {
      throwsErrno(() => binding.apiHandshake(fd, 2 ** 30), 'EINVAL', 'UFFDIO_API');
    } finally { binding.closeFd(fd); }
    const fd2 = binding.openSyscall(nativeProbe.userModeOnly === true);
    try {
      binding.apiHandshake(fd2, 0);
      throwsErrno(() => binding.apiHandshake(fd2, 0), 'EINVAL', 'UFFDIO_API');
    } finally { binding.closeFd(fd2); }
  });
});

describeNative('opening and negotiation', () => {
  it('opens through the syscall and says so; THREAD_ID is on by default', () => {
    const uffd = Userfaultfd.open({ backend: 'native' });
    try {
      assert.strictEqual(uffd.via, 'syscall');
      assert.strictEqual(probe({ backend: 'native' }).via, 'syscall');
      assert.ok(uffd.features.includes('THREAD_ID'));
      assert.ok(uffd.ioctls.includes('register') && uffd.ioctls.includes('api'));
    } finally { uffd.close(); }
  });
  it('asking for a feature the kernel lacks fails with a UffdError that names it', function () {
    const lacking = Object.keys(constants.features).filter((f) => !nativeProbe.features.includes(f));
    if (lacking.length === 0) {
      skipWithReason(this, 'this kernel supports every feature');
    }
    assert.throws(() => Userfaultfd.open({ backend: 'native', features: [lacking[0]] }), (e) => {
      assert.ok(e instanceof UffdError);
      assert.strictEqual(e.code, 'EINVAL');
      assert.strictEqual(e.feature, lacking[0]);
      assert.ok(e.message.includes(lacking[0]));
      return true;
    });
  });
  it('userModeOnly: true opens a uffd that handles faults from user-mode accesses', async () => {
    const uffd = Userfaultfd.open({ backend: 'native', userModeOnly: true });
    const region = Region.map(PAGE, { backend: 'native' });
    try {
      uffd.register(region);
      uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 17)));
      assert.deepStrictEqual(await region.read(0, PAGE), pattern(PAGE, 17));
    } finally { uffd.close(); region.unmap(); }
  });
  it('the negotiated features are what /proc/self/fdinfo reports', () => {
    const uffd = Userfaultfd.open({ backend: 'native', features: ['EVENT_REMOVE', 'POISON'] });
    try {
      const info = fs.readFileSync(`/proc/self/fdinfo/${uffd.fd}`, 'utf8');
      const m = /^API:\s*([0-9a-f]+):([0-9a-f]+):/m.exec(info);
      const bits = parseInt(m[2], 16) & 0x7fffffff;
      const mask = uffd.features.reduce((a, f) => a | constants.features[f], 0);
      assert.strictEqual(bits, mask);
      assert.deepStrictEqual([...uffd.features].sort(), ['EVENT_REMOVE', 'POISON', 'THREAD_ID']);
    } finally { uffd.close(); }
  });
  it('fromFd() of something that is not a userfaultfd is a TypeError', () => {
    const fd = fs.openSync('/dev/null', 'r');
    try {
      assert.throws(() => Userfaultfd.fromFd(fd), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => Userfaultfd.fromFd(99999), { code: 'ERR_INVALID_ARG_TYPE' });
    } finally { fs.closeSync(fd); }
  });
});

describeNative('POISON kills the process that touches it', () => {
  it('a child reading a poisoned page on its main thread is killed by SIGBUS', async function () {
    requireFeature(this, 'native', 'POISON');
    const r = await runChild(`
      const { Userfaultfd, Region } = require('./dist');
      const uffd = Userfaultfd.open({ features: ['POISON'] });
      const region = Region.map(2 * 4096);
      uffd.register(region);
      uffd.poison({ start: region.address + 4096n, length: 4096 });
      uffd.zeropage({ start: region.address, length: 4096 });
      const view = new Uint8Array(region.buffer);
      console.log('before', view[0]);
      console.log('after', view[4096]);
    `);
    assert.strictEqual(r.timedOut, false);
    assert.strictEqual(r.signal, 'SIGBUS', JSON.stringify(r));
    assert.match(r.stdout, /before 0/);
    assert.doesNotMatch(r.stdout, /after/);
  });
});

describeNative('hugetlb regions', function () {
  it('with no huge pages reserved, map() fails with a clear error', function () {
    const { total } = hugePagePool();
    let undo = () => undefined;
    if (total !== 0) {
      requireHostSettings(this, `vm.nr_hugepages (${total} huge pages are reserved; the test needs none)`);
      requirePrivileged(this, 'releasing the reserved huge pages (sysctl vm.nr_hugepages=0)', 'root');
      const before = fs.readFileSync(NR_HUGEPAGES, 'utf8').trim();
      fs.writeFileSync(NR_HUGEPAGES, '0');
      undo = () => fs.writeFileSync(NR_HUGEPAGES, before);
    }
    try {
      assert.throws(() => Region.map(HUGE, { backend: 'native', hugetlb: true }), (e) => {
        assert.ok(e instanceof UffdError, String(e));
        assert.strictEqual(e.code, 'ENOMEM');
        assert.strictEqual(e.syscall, 'mmap');
        assert.match(e.message, /huge pages.*nr_hugepages/);
        return true;
      });
    } finally {
      undo();
    }
  });

  it('with huge pages reserved: register MISSING, copy a huge page, read it back', async function () {
    requireFeature(this, 'native', 'MISSING_HUGETLBFS');
    const restore = reserveHugePages(this, 2, { size: HUGE });
    const uffd = Userfaultfd.open({ backend: 'native' });
    const region = Region.map(2 * HUGE, { backend: 'native', hugetlb: true });
    try {
      assert.strictEqual(region.pageSize, HUGE);
      const { ioctls } = uffd.register(region);
      assert.ok(ioctls.includes('copy'), String(ioctls));
      // Not huge-page aligned: the kernel refuses.
      assert.throws(() => uffd.copy(region.address, pattern(PAGE)), { code: 'EINVAL' });
      assert.strictEqual(uffd.copy(region.address, pattern(HUGE, 5)), HUGE);
      assert.deepStrictEqual(await region.read(0, HUGE), pattern(HUGE, 5));
      // ZEROPAGE does not exist for hugetlb.
      assert.throws(() => uffd.zeropage({ start: region.address + BigInt(HUGE), length: HUGE }), { code: 'EINVAL' });
      const faults = [];
      uffd.on('pagefault', (e) => { faults.push(e); uffd.copy(e.address, pattern(HUGE, 6)); });
      assert.deepStrictEqual(await region.read(HUGE + 10, 10), pattern(HUGE, 6).subarray(10, 20));
      assert.strictEqual(faults.length, 1);
      assert.strictEqual(faults[0].address, region.address + BigInt(HUGE));
    } finally { uffd.close(); region.unmap(); restore(); }
  });

  it('a shared hugetlb region (memfd) takes MINOR faults answered by continue', async function () {
    requireFeature(this, 'native', 'MINOR_HUGETLBFS');
    const restore = reserveHugePages(this, 1, { size: HUGE });
    const uffd = Userfaultfd.open({ backend: 'native', features: ['MINOR_HUGETLBFS'] });
    const region = Region.map(HUGE, { backend: 'native', hugetlb: true, shared: true });
    const alias = region.alias();
    try {
      await alias.write(0, pattern(HUGE, 8));
      uffd.register(region, { minor: true });
      assert.strictEqual(uffd.continue(region), HUGE);
      assert.deepStrictEqual(await region.read(HUGE - 100, 100), pattern(HUGE, 8).subarray(HUGE - 100));
    } finally { uffd.close(); alias.unmap(); region.unmap(); restore(); }
  });
});
