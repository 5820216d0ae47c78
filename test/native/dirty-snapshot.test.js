// Issue 16 on the kernel: dirty tracking of writes from Workers, the thread pool and huge
// pages; live snapshots that stay consistent while a Worker or the thread pool keeps writing a
// checksum-carrying pattern; and what a snapshot leaves behind when the uffd closes under it.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Worker } = require('worker_threads');
const { Userfaultfd, Region } = require('../../dist');
const { describeNative, requireFeature, runChild, PAGE, reserveHugePages } = require('../helpers');
const { verifyImage, check, strideFor } = require('./pattern-check');

const DIST = path.join(__dirname, '../../dist');
const TRACK = { features: ['WP_ASYNC', 'WP_UNPOPULATED'] };
// Images in memory where there is a tmpfs: a loaded disk would make the writers' stall about it.
const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const tmp = (name) => path.join(TMP, `uffd-ds-${process.pid}-${name}`);

/** A Worker that maps `length` bytes (dirty-snapshot-writer.js); resolves once it has. */
async function startWriter(length, opts = {}) {
  const worker = new Worker(path.join(__dirname, 'dirty-snapshot-writer.js'), { workerData: { dist: DIST, length, ...opts } });
  const first = await nextMessage(worker);
  return { worker, range: { start: first.address, length: first.length } };
}

function nextMessage(worker) {
  return new Promise((resolve, reject) => {
    const onError = (e) => { worker.off('message', onMessage); reject(e); };
    const onMessage = (m) => { worker.off('error', onError); resolve(m); };
    worker.once('message', onMessage);
    worker.once('error', onError);
  });
}

async function stopWriter(w) {
  w.worker.postMessage({ cmd: 'exit' });
  await new Promise((r) => w.worker.once('exit', r));
}

function rel(range, runs) {
  return runs.map((r) => [Number(r.start - range.start) / PAGE, r.length / PAGE]);
}

describeNative('dirtyPages on the kernel', function () {
  this.timeout(30000);

  it('sees writes from a Worker (plain stores, no fault to handle) and resets', async function () {
    requireFeature(this, 'native', 'WP_ASYNC');
    const w = await startWriter(256 * PAGE);
    const uffd = Userfaultfd.open(TRACK);
    try {
      uffd.register(w.range, { wp: true });
      uffd.writeProtect(w.range, { protect: true });
      assert.deepStrictEqual(uffd.dirtyPages(w.range), []);
      w.worker.postMessage({ cmd: 'touch', pages: [0, 1, 2, 100, 255] });
      await nextMessage(w.worker);
      assert.deepStrictEqual(rel(w.range, uffd.dirtyPages(w.range, { reset: true })), [[0, 3], [100, 1], [255, 1]]);
      w.worker.postMessage({ cmd: 'touch', pages: [7] });
      await nextMessage(w.worker);
      assert.deepStrictEqual(rel(w.range, uffd.dirtyPages(w.range)), [[7, 1]]);
    } finally {
      uffd.close();
      await stopWriter(w);
    }
  });

  it('sees thread-pool writes and Worker writes together', async function () {
    requireFeature(this, 'native', 'WP_ASYNC');
    const uffd = Userfaultfd.open(TRACK);
    const region = Region.map(64 * PAGE);
    const w = await startWriter(64 * PAGE);
    try {
      for (const r of [region, w.range]) {
        uffd.register(r, { wp: true });
        uffd.writeProtect(r, { protect: true });
      }
      w.worker.postMessage({ cmd: 'touch', pages: [3, 4] });
      await Promise.all([region.write(10 * PAGE, Buffer.alloc(3 * PAGE, 1)), nextMessage(w.worker)]);
      assert.deepStrictEqual(rel({ start: region.address }, uffd.dirtyPages(region)), [[10, 3]]);
      assert.deepStrictEqual(rel(w.range, uffd.dirtyPages(w.range)), [[3, 2]]);
    } finally {
      uffd.close();
      region.unmap();
      await stopWriter(w);
    }
  });

  it('huge pages: a one-byte write dirties its whole 2 MiB page', async function () {
    requireFeature(this, 'native', 'WP_ASYNC');
    requireFeature(this, 'native', 'WP_HUGETLBFS_SHMEM');
    const restore = reserveHugePages(this, 4, { size: 2 * 1024 * 1024 });
    const uffd = Userfaultfd.open({ features: ['WP_ASYNC', 'WP_UNPOPULATED', 'WP_HUGETLBFS_SHMEM'] });
    let region;
    try {
      const HUGE = 2 * 1024 * 1024;
      region = Region.map(2 * HUGE, { hugetlb: true });
      uffd.register(region, { wp: true });
      uffd.writeProtect(region, { protect: true });
      assert.deepStrictEqual(uffd.dirtyPages(region), []);
      await region.write(HUGE + 12345, Buffer.from([1]));
      const runs = uffd.dirtyPages(region, { reset: true });
      assert.deepStrictEqual(runs, [{ start: region.address + BigInt(HUGE), length: HUGE }]);
      assert.deepStrictEqual(uffd.dirtyPages(region), []);
      assert.strictEqual((await region.read(HUGE + 12345, 1))[0], 1);
    } finally {
      uffd.close();
      region?.unmap();
      restore();
    }
  });

  it('a uffd adopted with fromFd cannot scan: pagemap is this process\'s, and the fd may not be', async function () {
    requireFeature(this, 'native', 'WP_ASYNC');
    const uffd = Userfaultfd.open(TRACK);
    const adopted = Userfaultfd.fromFd(uffd.fd);
    const region = Region.map(4 * PAGE);
    try {
      adopted.register(region, { wp: true });
      assert.throws(() => adopted.dirtyPages(region), { code: 'ERR_UFFD_FOREIGN_MEMORY' });
    } finally {
      adopted.close();
      uffd.close();
      region.unmap();
    }
  });
});

describeNative('snapshot under writers', function () {
  this.timeout(120000);
  const files = [];
  after(() => { for (const f of files) fs.rmSync(f, { force: true }); });

  it('a Worker rewriting a checksummed pattern in a loop: every image verifies', async () => {
    const w = await startWriter(2048 * PAGE);
    const uffd = Userfaultfd.open();
    const stalls = [];
    let saved = 0;
    try {
      w.worker.postMessage({ cmd: 'pattern' });
      for (let round = 0; round < 4; round++) {
        const f = tmp(`worker-${round}`);
        files.push(f);
        const res = await uffd.snapshot(w.range, f);
        assert.strictEqual(res.bytes, 2048 * PAGE);
        saved += res.savedBeforeWrite;
        if (res.savedBeforeWrite > 0) stalls.push(res.stallNs);
        const problem = verifyImage(fs.readFileSync(f));
        assert.strictEqual(problem, null, `round ${round}: ${problem}`);
      }
      w.worker.postMessage({ cmd: 'stop' });
      const { gens } = await nextMessage(w.worker);
      assert.ok(gens > 0, 'the writer ran');
      // The writer kept writing throughout: some of its writes met pages not yet saved.
      assert.ok(saved > 0, 'no write was ever held for copy-before-write');
      console.log(`      savedBeforeWrite ${saved}; WP-fault stall per round (p50/p99 us): ` +
        stalls.map((s) => `${(s.p50 / 1e3).toFixed(1)}/${(s.p99 / 1e3).toFixed(1)}`).join(', '));
    } finally {
      uffd.close();
      await stopWriter(w);
    }
    // After the snapshots the writer ran on unprotected memory: the range is as it was found.
  });

  it('thread-pool writes of the pattern, page by page: every image verifies', async () => {
    const pages = 1024;
    const region = Region.map(pages * PAGE);
    const uffd = Userfaultfd.open();
    let stop = false;
    const stride = strideFor(pages);
    const page = Buffer.alloc(PAGE);
    const words = new Uint32Array(page.buffer, page.byteOffset, PAGE / 4);
    const writer = (async () => {
      for (let g = 1; !stop && g < 4000; g++) {
        for (let i = 0; i < pages; i++) {
          const p = (i * stride) % pages;
          for (let k = 0; k < PAGE / 4; k++) words[k] = ((g << 20) | check(p * 1024 + k, g)) >>> 0;
          await region.write(p * PAGE, page); // copies `page` before it resolves... and waits
        }
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        const f = tmp(`pool-${round}`);
        files.push(f);
        await uffd.snapshot(region, f);
        const problem = verifyImage(fs.readFileSync(f));
        assert.strictEqual(problem, null, `round ${round}: ${problem}`);
      }
    } finally {
      stop = true;
      await writer;
      uffd.close();
      region.unmap();
    }
  });

  it('a uffd closed in the middle of a snapshot: the promise settles, the writer is released, the process exits', async () => {
    const r = await runChild(`
      const { Userfaultfd } = require('./dist');
      const { Worker } = require('worker_threads');
      const path = require('path');
      const w = new Worker(path.resolve('test/native/dirty-snapshot-writer.js'), { workerData: { dist: path.resolve('dist'), length: 64 << 20 } });
      w.once('message', async (m) => {
        const uffd = Userfaultfd.open();
        w.postMessage({ cmd: 'pattern' });
        // Closed once the stream has begun: the image file has grown.
        const file = ${JSON.stringify(tmp('closed'))};
        const p = uffd.snapshot({ start: m.address, length: m.length }, file);
        const poll = setInterval(() => {
          let size = 0;
          try { size = require('fs').statSync(file).size; } catch {}
          if (size > 0) { clearInterval(poll); uffd.close(); }
        }, 1);
        const outcome = await p.then(() => 'resolved', (e) => 'rejected ' + e.code);
        clearInterval(poll);
        require('fs').rmSync(file, { force: true });
        w.postMessage({ cmd: 'stop' });
        w.once('message', () => { console.log('settled', outcome); w.postMessage({ cmd: 'exit' }); });
      });
    `, { timeoutMs: 30000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr);
    assert.match(r.stdout, /settled (resolved|rejected ECANCELED)/);
  });
});

describeNative('snapshot of lazily served memory', function () {
  it('pages still missing in a served range are faulted in by the snapshot and come from the source', async () => {
    const { PageSource } = require('../../dist');
    const uffd = Userfaultfd.open();
    const region = Region.map(64 * PAGE);
    const source = Buffer.alloc(64 * PAGE);
    for (let p = 0; p < 64; p++) source.fill(p + 1, p * PAGE, (p + 1) * PAGE);
    const f = tmp('served');
    try {
      uffd.serve(region, PageSource.buffer(source));
      await region.read(10 * PAGE, PAGE); // one page present already, the others missing
      const res = await uffd.snapshot(region, f);
      assert.strictEqual(res.bytes, 64 * PAGE);
      assert.ok(fs.readFileSync(f).equals(source));
      assert.throws(() => uffd.writeProtect(region, { protect: true }), { code: 'ENOENT' }, 'WP taken back');
    } finally {
      uffd.close();
      region.unmap();
      fs.rmSync(f, { force: true });
    }
  });
});
