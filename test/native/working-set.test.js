// Working sets on the kernel: prefetch never starves a demand fault, works on a uffd received
// from another process, and stops (joined) at close().
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource, listenForUffd, readWorkingSet } = require('../../dist');
const { encodeWorkingSet } = require('../../dist/sources/working-set');
const { PAGE, describeNative, runChild, delay, pattern } = require('../helpers');

const DIST = path.join(__dirname, '..', '..', 'dist');

/** A set file of `runs` ([first, count] pairs) for a source and range of `bytes`. */
function writeSet(file, bytes, runs) {
  fs.writeFileSync(file, encodeWorkingSet({
    pageSize: PAGE, sourceSize: bytes, rangeLength: bytes, generation: 1,
    runs: runs.map(([first, count]) => ({ first, count, write: false, age: 0 })),
  }));
}

async function until(cond) {
  for (let i = 0; i < 4000 && !cond(); i++) await delay(5);
  return cond();
}

describeNative('working sets: prefetch thread', function () {
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-ws-native-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a demand fault far outside the set is answered while prefetch of a large set still runs', async function () {
    this.timeout(60000);
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
    this.timeout(60000);
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
      const child = runChild(`
        const fs = require('fs');
        const { Userfaultfd, Region, sendUffd } = require(${JSON.stringify(DIST)});
        const region = Region.map(${bytes});
        const uffd = Userfaultfd.open();
        uffd.register(region);
        sendUffd(${JSON.stringify(sock)}, uffd, region.address.toString());
        const wait = setInterval(async () => {
          if (!fs.existsSync(${JSON.stringify(go)})) return;
          clearInterval(wait);
          for (const p of ${JSON.stringify(order)}) await region.read(p * ${PAGE}, 1);
          const b = await region.read(0, ${bytes});
          console.log(require('crypto').createHash('sha256').update(b).digest('hex'));
          uffd.close();
        }, 5);
      `, { timeoutMs: 30000 });
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

    // Prefetch only the ordered pages: a set of the first 9 pages.
    writeSet(set, bytes, [[200, 3], [3, 2], [100, 1], [150, 2], [7, 1]]);
    // One page per demand fault (no read-ahead): how many pages a fault fills must not depend
    // on the order in which the child's memcpy touches them (glibc's large copies interleave
    // pages; the ASan build's copies go forward, which adaptive read-ahead would coalesce).
    const second = await childRun('prefetch', { prefetch: set, readahead: false }, async (uffd) => {
      assert.ok(await until(() => uffd.stats().prefetched === 9), 'prefetch filled the other process');
    });
    assert.strictEqual(second.prefetched, 9);
    assert.strictEqual(second.prefetchMisses, 0);
    assert.strictEqual(second.demandFaults, pages - 9, 'the prefetched pages did not fault');
  });

  it('close() stops a prefetch in progress and joins its thread: the process exits cleanly', async function () {
    this.timeout(30000);
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
    this.timeout(30000);
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
    this.timeout(30000);
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
});
