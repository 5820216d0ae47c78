// examples/firecracker-handler against test/fixtures/firecracker_peer.c, Firecracker's side of
// the snapshot-restore handshake (built here with cc); and serve() of 2 MiB hugetlbfs pages,
// which Firecracker's guest memory may use. The full command is in
// firecracker-handler-cli.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { pattern, runChild, runProcess, skipWithReason, requirePrivileged, describeNative, reserveHugePages } = require('../helpers');
const { buildPeer, assertPeerOk } = require('../fixtures/firecracker-peer');

const ROOT = path.join(__dirname, '..', '..');
const HANDLER = path.join(ROOT, 'examples', 'firecracker-handler', 'index.js');
const MEM_SIZE = 4 << 20;
const HUGE = 2 << 20;

const run = (file, args, timeoutMs = 30000) => runProcess(file, args, { timeoutMs });

describeNative('examples/firecracker-handler with the C Firecracker peer', { features: ['EVENT_REMOVE'] }, function () {
  this.timeout(60000);
  let dir;
  let peerBin;
  let memFile;
  before(function () {
    requirePrivileged(this, "the Firecracker peer's userfaultfd (as Firecracker's: KVM touches guest memory in kernel mode)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fc-'));
    try {
      peerBin = buildPeer(dir);
    } catch (e) {
      skipWithReason(this, `cannot build the fixture with cc (${e.message.split('\n')[0]})`);
    }
    memFile = path.join(dir, 'mem.img');
    fs.writeFileSync(memFile, pattern(MEM_SIZE, 3));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serveOne(name, peerArgs, { mem = memFile, pages = 1024 } = {}) {
    const sock = path.join(dir, `${name}.sock`);
    const handler = runChild(HANDLER, { isFile: true, args: [sock, mem], timeoutMs: 40000 });
    const peer = await run(peerBin, [sock, mem, ...peerArgs]);
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
    const peer = await run(peerBin, [sock, memFile, '--page-size', String(4 << 20), '--watchdog', '20']);
    const h = await handler;
    assert.strictEqual(peer.signal, 'SIGKILL', `peer: ${peer.code} ${peer.stderr}`);
    assert.deepStrictEqual([h.code, h.signal], [1, null], h.stderr);
    assert.match(h.stderr, /^firecracker-handler: vm pid \d+ cannot be served \(page size 4194304 is not supported\): killed\n$/);
  });

  it('serves 2 MiB hugetlbfs guest memory with 2 MiB copies', async function () {
    const restore = reserveHugePages(this, 8, { size: HUGE });
    try {
      const huge = path.join(dir, 'huge.img');
      fs.writeFileSync(huge, pattern(6 * HUGE, 9));
      const { h } = await serveOne('huge', ['--huge', '--remove-pages', '1'], { mem: huge, pages: 6 });
      // Every copy is a whole huge page: 6 from the file, 1 of zeros for the removed one.
      const bytes = Number(/(\d+) bytes/.exec(h.stdout)[1]);
      assert.strictEqual(bytes % HUGE, 0, h.stdout);
      assert.ok(bytes >= 6 * HUGE, h.stdout);
    } finally {
      restore();
    }
  });
});

describeNative('serve() of 2 MiB hugetlb pages', { features: ['MISSING_HUGETLBFS'] }, function () {
  let restore;
  before(function () {
    restore = reserveHugePages(this, 4, { size: HUGE });
  });
  after(() => {
    if (restore) restore();
  });

  it('answers faults in a hugetlb Region from a file, one huge page per copy, and zeros past its end', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-huge-'));
    const file = path.join(dir, 'src.img');
    const src = pattern(3 * HUGE + 4096, 4);
    fs.writeFileSync(file, src);
    const uffd = Userfaultfd.open({ backend: 'native' });
    const region = Region.map(4 * HUGE, { hugetlb: true, backend: 'native' });
    try {
      uffd.serve(region, PageSource.file(file, { offset: 4096 }), { readahead: false });
      assert.ok((await region.read(HUGE + 100, 64)).equals(src.subarray(4096 + HUGE + 100, 4096 + HUGE + 164)));
      assert.ok((await region.read(0, 64)).equals(src.subarray(4096, 4096 + 64)));
      // The source ends 3 huge pages in: the 4th page is zeros.
      assert.ok((await region.read(3 * HUGE + 5, 64)).equals(Buffer.alloc(64)));
      assert.deepStrictEqual({ faults: uffd.stats().faults, bytes: uffd.stats().bytes }, { faults: 3, bytes: 3 * HUGE });
    } finally {
      uffd.close();
      region.unmap();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a working set (record, prefetch) on 2 MiB pages with ERR_UFFD_UNSUPPORTED: sets are kept in base pages', function () {
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

  it('refuses a page size that is neither the base page nor 2 MiB, and a misaligned huge range, before any syscall', function () {
    const uffd = Userfaultfd.open({ backend: 'native' });
    try {
      assert.throws(() => uffd.serve({ start: 1n << 30n, length: HUGE }, PageSource.zero(), { pageSize: 8192 }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => uffd.serve({ start: (1n << 30n) + 4096n, length: HUGE }, PageSource.zero(), { pageSize: HUGE }), { code: 'ERR_OUT_OF_RANGE' });
    } finally {
      uffd.close();
    }
  });
});

describe('serve() of 2 MiB pages on the simulator', function () {
  it('answers a hugetlb Region in whole 2 MiB pages, zeros past the source, as the kernel backend does', async function () {
    const uffd = Userfaultfd.open({ backend: 'simulator' });
    const region = Region.map(3 * HUGE, { hugetlb: true, backend: 'simulator' });
    const src = pattern(HUGE + HUGE / 2, 6);
    try {
      uffd.serve(region, PageSource.buffer(src), { readahead: false });
      assert.ok((await region.read(HUGE + 8, 64)).equals(src.subarray(HUGE + 8, HUGE + 72)));
      // The source ends half-way through the 2nd huge page: the rest of it, and the 3rd, read as zeros.
      assert.ok((await region.read(HUGE + HUGE / 2, 64)).equals(Buffer.alloc(64)));
      assert.ok((await region.read(2 * HUGE + 5, 64)).equals(Buffer.alloc(64)));
      assert.ok((await region.read(0, 64)).equals(src.subarray(0, 64)));
      assert.deepStrictEqual({ faults: uffd.stats().faults, bytes: uffd.stats().bytes }, { faults: 3, bytes: 3 * HUGE });
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  it('refuses a working set on 2 MiB pages with ERR_UFFD_UNSUPPORTED (sets are kept in base pages)', function () {
    const uffd = Userfaultfd.open({ backend: 'simulator' });
    const region = Region.map(HUGE, { hugetlb: true, backend: 'simulator' });
    try {
      assert.throws(() => uffd.serve(region, PageSource.zero(), { record: path.join(os.tmpdir(), 'never-written') }), { code: 'ERR_UFFD_UNSUPPORTED' });
    } finally {
      uffd.close();
      region.unmap();
    }
  });
});
