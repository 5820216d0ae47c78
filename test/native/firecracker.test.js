// examples/firecracker-handler against test/fixtures/firecracker_peer.c, Firecracker's side of
// the snapshot-restore handshake (built here with cc); and serve() of hugetlbfs pages (the
// kernel's default size), which Firecracker's guest memory may use (in 2 MiB pages). The full
// command is in firecracker-handler-cli.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { pattern, runChild, runProcess, skipWithReason, requirePrivileged, describeNative, reserveHugePages, scaled, PAGE, HUGE } = require('../helpers');
const { buildPeer, assertPeerOk, MEM_SIZE, watchdog, listening } = require('../fixtures/firecracker-peer');

const ROOT = path.join(__dirname, '..', '..');
const HANDLER = path.join(ROOT, 'examples', 'firecracker-handler', 'index.js');
// Firecracker's huge pages are 2 MiB ("huge_pages": "2M"), whatever the kernel's default.
const FIRECRACKER_HUGE = 2 << 20;

const run = (file, args, timeoutMs = 30000) => runProcess(file, args, { timeoutMs });

describeNative('examples/firecracker-handler with the C Firecracker peer', { features: ['EVENT_REMOVE'] }, function () {
  this.timeout(scaled(60000));
  let dir;
  let peerBin;
  let memFile;
  before(function () {
    requirePrivileged(this, "the Firecracker peer's userfaultfd (as Firecracker's: KVM touches guest memory in kernel mode)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fc-'));
    try {
      peerBin = buildPeer(dir);
    } catch (e) {
      skipWithReason(this, e.message);
    }
    memFile = path.join(dir, 'mem.img');
    fs.writeFileSync(memFile, pattern(MEM_SIZE, 3));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serveOne(name, peerArgs, { mem = memFile, pages = MEM_SIZE / PAGE } = {}) {
    const sock = path.join(dir, `${name}.sock`);
    const handler = runChild(HANDLER, { isFile: true, args: [sock, mem], timeoutMs: 40000 });
    await listening(sock, handler);
    const peer = await run(peerBin, [sock, mem, ...watchdog(), ...peerArgs]);
    const h = await handler;
    assertPeerOk(peer, pages);
    assert.strictEqual(h.timedOut, false, `the handler did not exit: ${h.stderr}`);
    assert.deepStrictEqual([h.code, h.signal], [0, null], h.stderr);
    assert.match(h.stdout, /^firecracker-handler: vm pid \d+ served: \d+ faults, \d+ bytes/);
    assert.strictEqual(h.stderr, '');
    return { peer, h };
  }

  it('serves every page from the memory file, the removed range as zeros, and exits 0 when the VM has gone', async function () {
    await serveOne('one', []);
  });

  it('reads page_size_kib as bytes, as Firecracker filled it (it hung here before)', async function () {
    await serveOne('kib', ['--kib']);
  });

  it('takes the fd when it comes after the JSON body, in a second message', async function () {
    await serveOne('after', ['--fd-after']);
  });

  it('kills a VM whose page size it cannot serve, instead of leaving it blocked on its first fault', async function () {
    const sock = path.join(dir, 'size.sock');
    const handler = runChild(HANDLER, { isFile: true, args: [sock, memFile], timeoutMs: 40000 });
    await listening(sock, handler);
    const peer = await run(peerBin, [sock, memFile, '--page-size', String(4 << 20), ...watchdog(20)]);
    const h = await handler;
    assert.strictEqual(peer.signal, 'SIGKILL', `peer: ${peer.code} ${peer.stderr}`);
    assert.deepStrictEqual([h.code, h.signal], [1, null], h.stderr);
    assert.match(h.stderr, /^firecracker-handler: vm pid \d+ cannot be served \(page size 4194304 is not supported\): killed\n$/);
  });

  it('serves 2 MiB hugetlbfs guest memory with 2 MiB copies', async function () {
    const restore = reserveHugePages(this, 8, { size: FIRECRACKER_HUGE });
    try {
      const huge = path.join(dir, 'huge.img');
      fs.writeFileSync(huge, pattern(6 * FIRECRACKER_HUGE, 9));
      const { h } = await serveOne('huge', ['--huge', '--remove-pages', '1'], { mem: huge, pages: 6 });
      // Every copy is a whole huge page: 6 from the file, 1 of zeros for the removed one.
      const bytes = Number(/(\d+) bytes/.exec(h.stdout)[1]);
      assert.strictEqual(bytes % FIRECRACKER_HUGE, 0, h.stdout);
      assert.ok(bytes >= 6 * FIRECRACKER_HUGE, h.stdout);
    } finally {
      restore();
    }
  });
});

describeNative(`serve() of ${HUGE >> 20} MiB hugetlb pages (the default size)`, { features: ['MISSING_HUGETLBFS'] }, function () {
  let restore;
  before(function () {
    restore = reserveHugePages(this, 4);
  });
  after(() => {
    if (restore) restore();
  });

  // Both file modes: pread goes through a bounce buffer, which must hold a whole huge page
  // (32 MiB over 16 KiB pages: more than a read-ahead window).
  for (const mode of ['mmap', 'pread']) {
    it(`answers faults in a hugetlb Region from a file (${mode}), one huge page per copy, and zeros past its end`, async function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-huge-'));
      const file = path.join(dir, 'src.img');
      const src = pattern(3 * HUGE + PAGE, 4);
      fs.writeFileSync(file, src);
      const uffd = Userfaultfd.open({ backend: 'native' });
      const region = Region.map(4 * HUGE, { hugetlb: true, backend: 'native' });
      try {
        uffd.serve(region, PageSource.file(file, { offset: PAGE, mode }), { readahead: false });
        assert.ok((await region.read(HUGE, HUGE)).equals(src.subarray(PAGE + HUGE, PAGE + 2 * HUGE)), 'the 2nd huge page, whole');
        assert.ok((await region.read(0, 64)).equals(src.subarray(PAGE, PAGE + 64)));
        // The source ends 3 huge pages in: the 4th page is zeros, all of it.
        assert.ok((await region.read(3 * HUGE, HUGE)).equals(Buffer.alloc(HUGE)));
        assert.deepStrictEqual({ faults: uffd.stats().faults, bytes: uffd.stats().bytes }, { faults: 3, bytes: 3 * HUGE });
      } finally {
        uffd.close();
        region.unmap();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('refuses a working set (record, prefetch) on huge pages with ERR_UFFD_UNSUPPORTED: sets are kept in base pages', function () {
    if (typeof Userfaultfd.prototype.saveWorkingSet !== 'function') skipWithReason(this, 'this build has no working sets');
    const uffd = Userfaultfd.open({ backend: 'native' });
    const region = Region.map(HUGE, { hugetlb: true, backend: 'native' });
    try {
      assert.throws(() => uffd.serve(region, PageSource.zero(), { record: path.join(os.tmpdir(), 'never-written') }), { code: 'ERR_UFFD_UNSUPPORTED' });
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  it('refuses a page size that is neither the base page nor the huge page, and a misaligned huge range, before any syscall', function () {
    const uffd = Userfaultfd.open({ backend: 'native' });
    try {
      assert.throws(() => uffd.serve({ start: 1n << 30n, length: HUGE }, PageSource.zero(), { pageSize: 2 * PAGE }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => uffd.serve({ start: (1n << 30n) + BigInt(PAGE), length: HUGE }, PageSource.zero(), { pageSize: HUGE }), { code: 'ERR_OUT_OF_RANGE' });
    } finally {
      uffd.close();
    }
  });
});
