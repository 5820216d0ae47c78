// Working sets on the kernel: prefetch never starves a demand fault, works on a uffd received
// from another process, and stops (joined) at close().
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource, listenForUffd, readWorkingSet } = require('../../dist');
const { encodeWorkingSet } = require('../../dist/sources/working-set');
const { execFileSync } = require('child_process');
const { PAGE, describeNative, runChild, runProcess, delay, pattern, scaled, scatteredPages, skipWithReason } = require('../helpers');
const { buildFixture } = require('../fixtures/c-fixtures');

const DIST = path.join(__dirname, '..', '..', 'dist');

/** A set file of `runs` ([first, count] pairs) for a source and range of `bytes`. */
function writeSet(file, bytes, runs) {
  fs.writeFileSync(file, encodeWorkingSet({
    pageSize: PAGE, sourceSize: bytes, rangeLength: bytes, generation: 1,
    runs: runs.map(([first, count]) => ({ first, count, write: false, age: 0 })),
  }));
}

/** A child that maps `bytes`, registers them and sends its uffd to `sock`, then runs `then` (source). */
function remoteChild(sock, bytes, then) {
  return runChild(`
    const fs = require('fs');
    const { Userfaultfd, Region, sendUffd } = require(${JSON.stringify(DIST)});
    const region = Region.map(${bytes});
    const uffd = Userfaultfd.open();
    uffd.register(region);
    sendUffd(${JSON.stringify(sock)}, uffd, region.address.toString());
    ${then}
  `, { timeoutMs: 50000 });
}

async function until(cond) {
  for (let i = 0; i < scaled(4000) && !cond(); i++) await delay(5);
  return cond();
}

describeNative('working sets: prefetch thread', function () {
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-ws-native-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a demand fault far outside the set is answered while prefetch of a large set still runs', async function () {
    this.timeout(scaled(60000));
    const bytes = 512 << 20;
    const pages = bytes / PAGE;
    const source = Buffer.allocUnsafe(bytes).fill(0x5a);
    source.fill(0xc3, bytes - PAGE); // the last page, outside the set
    // The first 7/8 of the range, in 256-page runs in a scattered order.
    const runs = [];
    for (let i = 0; i < (pages * 7) / 8 / 256; i++) runs.push([i * 256, 256]);
    runs.sort((a, b) => ((a[0] * 2654435761) % 4093) - ((b[0] * 2654435761) % 4093));
    const setPages = runs.length * 256;
    const set = path.join(dir, 'big.uffdws');
    writeSet(set, bytes, runs);
    const uffd = Userfaultfd.open();
    const region = Region.map(bytes);
    try {
      uffd.serve(region, PageSource.buffer(source), { prefetch: set });
      const got = await region.read(bytes - PAGE, PAGE);
      const at = uffd.stats();
      assert.deepStrictEqual(got, source.subarray(bytes - PAGE));
      assert.ok(at.prefetched < setPages, `the far fault was answered before prefetch ended (${at.prefetched} of ${setPages})`);
      assert.strictEqual(at.prefetchMisses, 0);
      assert.ok(await until(() => uffd.stats().prefetched === setPages), `prefetch went on to the end: ${uffd.stats().prefetched}`);
      const s = uffd.stats();
      assert.strictEqual(s.demandFaults, 1);
      assert.deepStrictEqual(await region.read(runs[5][0] * PAGE, 256 * PAGE), source.subarray(runs[5][0] * PAGE, (runs[5][0] + 256) * PAGE));
      assert.strictEqual(uffd.stats().demandFaults, 1, 'prefetched pages do not fault');
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  it('a uffd received from another process: recorded there, then prefetched into its memory', async function () {
    this.timeout(scaled(60000));
    const pages = 256;
    const bytes = pages * PAGE;
    const image = path.join(dir, 'image.bin');
    const data = pattern(bytes, 9);
    fs.writeFileSync(image, data);
    const set = path.join(dir, 'remote.uffdws');
    const order = [200, 201, 202, 3, 4, 100, 150, 151, 7];
    const expected = crypto.createHash('sha256').update(data).digest('hex');

    /** One run of the child: send its uffd, wait for `go`, touch `order`, hash everything. */
    async function childRun(name, options, beforeGo) {
      const sock = path.join(dir, `${name}.sock`);
      const go = path.join(dir, `${name}.go`);
      const listener = listenForUffd(sock);
      const child = remoteChild(sock, bytes, `
        const wait = setInterval(async () => {
          if (!fs.existsSync(${JSON.stringify(go)})) return;
          clearInterval(wait);
          for (const p of ${JSON.stringify(order)}) await region.read(p * ${PAGE}, 1);
          const b = await region.read(0, ${bytes});
          console.log(require('crypto').createHash('sha256').update(b).digest('hex'));
          uffd.close();
        }, 5);
      `);
      const { value } = await listener.next();
      const uffd = value.uffd;
      try {
        const start = BigInt(value.payload.toString());
        uffd.serve({ start, length: bytes }, PageSource.file(image), options);
        await beforeGo(uffd);
        fs.writeFileSync(go, '');
        const r = await child;
        assert.strictEqual(r.code, 0, r.stderr);
        assert.strictEqual(r.stdout.trim(), expected);
        return uffd.stats();
      } finally {
        uffd.close();
        listener.close();
      }
    }

    const first = await childRun('record', { record: set }, async () => {});
    assert.strictEqual(first.demandFaults, pages - 0, 'one page per fault while recording');
    const recorded = readWorkingSet(set);
    assert.deepStrictEqual(recorded.runs.slice(0, 5).map((r) => [r.first, r.count]), [[200, 3], [3, 2], [100, 1], [150, 2], [7, 1]]);
    const setPages = recorded.runs.reduce((n, r) => n + r.count, 0);
    assert.strictEqual(setPages, pages, 'the hash read touched every page after the ordered ones');

    // Prefetch only the ordered pages: a set of the first 9 pages. Read-ahead off, so that every
    // other page faults once: with it, how many faults the hash's sequential read takes depends
    // on the order memcpy touches pages (glibc's x86-64 large copies interleave pages, arm64's
    // run straight through and the windows grow).
    writeSet(set, bytes, [[200, 3], [3, 2], [100, 1], [150, 2], [7, 1]]);
    const second = await childRun('prefetch', { prefetch: set, readahead: false }, async (uffd) => {
      assert.ok(await until(() => uffd.stats().prefetched === 9), 'prefetch filled the other process');
    });
    assert.strictEqual(second.prefetched, 9);
    assert.strictEqual(second.prefetchMisses, 0);
    assert.strictEqual(second.demandFaults, pages - 9, 'the prefetched pages did not fault');
  });

  it('close() stops a prefetch in progress and joins its thread: the process exits cleanly', async function () {
    this.timeout(scaled(30000));
    const set = path.join(dir, 'close.uffdws');
    const bytes = 256 << 20;
    writeSet(set, bytes, [[0, bytes / PAGE]]);
    const r = await runChild(`
      const { Userfaultfd, Region, PageSource } = require(${JSON.stringify(DIST)});
      const region = Region.map(${bytes});
      const uffd = Userfaultfd.open();
      uffd.serve(region, PageSource.buffer(Buffer.alloc(${bytes}, 1)), { prefetch: ${JSON.stringify(set)} });
      setImmediate(() => {
        uffd.close();
        const after = region.residentPages();
        setTimeout(() => {
          // Nothing fills the region once close() has returned.
          if (region.residentPages() !== after) { console.log('filled after close'); process.exit(3); }
          region.unmap();
          console.log('ok', after < ${bytes / PAGE});
        }, 200);
      });
    `, { timeoutMs: 20000 });
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.strictEqual(r.code, 0, r.stderr + r.stdout);
    assert.strictEqual(r.signal, null);
    assert.match(r.stdout, /^ok /);
  });

  it('a process that exits without close() still writes the set it recorded (the exit hook closes the uffd)', async function () {
    this.timeout(scaled(30000));
    const set = path.join(dir, 'exit.uffdws');
    const r = await runChild(`
      const { Userfaultfd, Region, PageSource } = require(${JSON.stringify(DIST)});
      const region = Region.map(${16 * PAGE});
      const uffd = Userfaultfd.open();
      uffd.serve(region, PageSource.zero(), { record: ${JSON.stringify(set)} });
      region.read(${3 * PAGE}, 1).then(() => region.read(${9 * PAGE}, 1)).then(() => process.exit(0));
    `, { timeoutMs: 20000 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.deepStrictEqual(readWorkingSet(set).runs.map((x) => [x.first, x.count]), [[3, 1], [9, 1]]);
  });

  it('a Worker that serves with prefetch and is terminated mid-prefetch leaves the process clean', async function () {
    this.timeout(scaled(30000));
    const set = path.join(dir, 'worker.uffdws');
    const bytes = 256 << 20;
    writeSet(set, bytes, [[0, bytes / PAGE]]);
    const r = await runChild(`
      const { Worker } = require('worker_threads');
      const w = new Worker(\`
        const { Userfaultfd, Region, PageSource } = require(${JSON.stringify(DIST)});
        const region = Region.map(${bytes});
        const uffd = Userfaultfd.open();
        uffd.serve(region, PageSource.buffer(Buffer.alloc(${bytes}, 1)), { prefetch: ${JSON.stringify(set)} });
        require('worker_threads').parentPort.postMessage('serving');
        setInterval(() => {}, 1000);
      \`, { eval: true });
      w.once('message', () => w.terminate().then(() => console.log('terminated')));
    `, { timeoutMs: 20000 });
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /terminated/);
  });

  describe('a program that touches its set at once', function () {
    const PAGES = 16384;
    const bytes = PAGES * PAGE;
    let image;
    let order;
    before(() => {
      image = path.join(dir, 'at-once.bin');
      fs.writeFileSync(image, pattern(bytes, 23));
      order = scatteredPages(PAGES, 4096, 5); // single pages at scattered places, shuffled
    });

    for (const cache of ['warm', 'cold']) {
      it(`on one CPU (taskset -c 0), ${cache} page cache: prefetch installs most of the set while the program faults without pause; prefetched + demand faults = the set`, async function () {
        this.timeout(60000);
        try {
          execFileSync('taskset', ['-c', '0', 'true']);
        } catch (e) {
          skipWithReason(this, `taskset is not usable here (${e.message.split('\n')[0]})`);
        }
        const set = path.join(dir, `one-cpu-${cache}.uffdws`);
        writeSet(set, bytes, order.map((p) => [p, 1]));
        // Cold: the image leaves the page cache (POSIX_FADV_DONTNEED on this file only), so that
        // each demand fault waits for the disk while the reader answers it.
        if (cache === 'cold') {
          let drop;
          try {
            drop = buildFixture('drop_file_cache', dir);
          } catch (e) {
            skipWithReason(this, `no cold page cache here: ${e.message}`);
          }
          execFileSync(drop, [image], { stdio: 'pipe' });
        }
        // The child's JS thread is the program (a native source answers it): it touches the set
        // in order with no pause, one page per fault (readahead: false), so only the prefetch
        // thread installs pages ahead of it, sharing the one CPU with the program and the reader.
        const r = await runProcess('taskset', ['-c', '0', process.execPath, '-e', `
          const fs = require('fs');
          const { Userfaultfd, Region, PageSource } = require(${JSON.stringify(DIST)});
          const order = ${JSON.stringify(order)};
          const region = Region.map(${bytes});
          const uffd = Userfaultfd.open();
          uffd.serve(region, PageSource.file(${JSON.stringify(image)}), { prefetch: ${JSON.stringify(set)}, readahead: false });
          const view = Buffer.from(region.buffer);
          let sum = 0;
          for (const p of order) sum += view[p * ${PAGE} + 123];
          const file = fs.readFileSync(${JSON.stringify(image)});
          let bad = 0;
          for (const p of order) if (!view.subarray(p * ${PAGE}, (p + 1) * ${PAGE}).equals(file.subarray(p * ${PAGE}, (p + 1) * ${PAGE}))) bad++;
          // The prefetch thread counts a batch just after its copy returns, and the program may
          // have read those pages already: the counts settle once it has gone past the last one.
          const settled = (n) => {
            const s = uffd.stats();
            if (s.prefetched + s.demandFaults < ${order.length} && n > 0) return setTimeout(settled, 5, n - 1);
            uffd.close();
            console.log(JSON.stringify({ bad, sum, prefetched: s.prefetched, demandFaults: s.demandFaults }));
          };
          settled(400);
        `], { timeoutMs: 50000 });
        assert.strictEqual(r.code, 0, r.stderr);
        const s = JSON.parse(r.stdout);
        assert.strictEqual(s.bad, 0, 'every byte equals the file');
        assert.strictEqual(s.prefetched + s.demandFaults, order.length, r.stdout);
        // The defect this guards is starvation (the issue measured 0 pages prefetched here). How
        // the one CPU splits between the program, the reader and the prefetcher is the
        // scheduler's: a CI run saw 2037 of 4096 (just under half), so a quarter is the floor.
        assert.ok(s.prefetched >= order.length / 4, `prefetch installed ${s.prefetched} of ${order.length} pages: a bounded share, not none`);
      });
    }

    it('eager, on a uffd received from another process: its first fault is answered once the whole set is in', async function () {
      this.timeout(60000);
      const setPages = order.filter((p) => p !== 0);
      const set = path.join(dir, 'eager-remote.uffdws');
      writeSet(set, bytes, setPages.map((p) => [p, 1]));
      const sock = path.join(dir, 'eager.sock');
      const listener = listenForUffd(sock);
      const child = remoteChild(sock, bytes, `
        // Page 0 is outside the set: the fault waits until the set is in.
        region.read(0, 1).then((b) => {
          console.log(JSON.stringify({ resident: region.residentPages(), first: b[0] }));
          uffd.close();
        });
      `);
      try {
        const { value } = await listener.next();
        const uffd = value.uffd;
        try {
          uffd.serve({ start: BigInt(value.payload.toString()), length: bytes }, PageSource.file(image), { prefetch: set, prefetchMode: 'eager' });
          const r = await child;
          assert.strictEqual(r.code, 0, r.stderr);
          const out = JSON.parse(r.stdout);
          assert.ok(out.resident >= setPages.length + 1, `${out.resident} pages resident at the first answer, the set has ${setPages.length}`);
          assert.strictEqual(out.first, fs.readFileSync(image)[0]);
          assert.strictEqual(uffd.stats().prefetched, setPages.length);
        } finally {
          uffd.close();
        }
      } finally {
        listener.close();
      }
    });
  });
});
