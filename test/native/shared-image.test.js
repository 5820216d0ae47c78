// Shared images across processes (native-only): clones in child processes that attach with
// attachSharedImage to a listener serving the image (listenForUffd({ image })), the byte cap,
// working sets, and a process's lifetime. The bad inputs are in shared-image-refusals.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource, SharedImage, listenForUffd } = require('../../dist');
const { describeNative, pattern, PAGE, runChild, startProcess } = require('../helpers');

const DIST = path.join(__dirname, '..', '..', 'dist');
const CLONE = path.join(__dirname, '..', 'fixtures', 'image-clone.js');

/** Resolves once `p`'s output holds `text` (bounded by the child's own deadline). */
async function printed(p, text) {
  for (let i = 0; i < 3000 && !p.output().stdout.includes(text); i++) await new Promise((r) => setTimeout(r, 10));
}

describeNative('SharedImage: clones in other processes', function () {
  let dir;
  let file;
  let data;
  const PAGES = 256;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-image-'));
    file = path.join(dir, 'image.bin');
    data = pattern(PAGES * PAGE, 23);
    fs.writeFileSync(file, data);
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['missing', 'minor']) {
    it(`4 processes: every byte right, each write private, the source read once, the pages held once (mode '${mode}')`, async function () {
      const image = SharedImage.create(PageSource.file(file), { mode });
      const sock = path.join(dir, `${mode}.sock`);
      const barrier = path.join(dir, `${mode}.go`);
      const listener = listenForUffd(sock, { image });
      const errors = [];
      listener.on('connectionError', (e) => errors.push(e));
      try {
        const children = [0, 1, 2, 3].map((i) => startProcess(process.execPath, [CLONE, sock, file, barrier, String(10 + i)],
          { timeoutMs: 30000 }));
        for (const c of children) await printed(c, 'touched');
        fs.writeFileSync(barrier, '');
        for (const c of children) await printed(c, '{');
        fs.writeFileSync(`${barrier}.done`, '');
        const results = await Promise.all(children.map((c) => c.done));
        const reports = results.map((r) => {
          assert.strictEqual(r.code, 0, r.stdout + r.stderr);
          return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')));
        });
        for (const r of reports) {
          assert.deepStrictEqual([r.bytesRight, r.mine, r.rest, r.mode], [true, true, true, mode]);
          // The clone's own write is its only private page.
          assert.strictEqual(r.smaps.Anonymous, PAGE);
        }
        // Four processes map every page: each accounts a quarter of the image, plus its page.
        const pss = reports.reduce((sum, r) => sum + r.smaps.Pss, 0);
        const once = PAGES * PAGE + 4 * PAGE;
        assert.ok(pss > 0.9 * once && pss < 1.1 * once, `sum of the clones' PSS ${pss}, about ${once} expected`);
        const s = image.stats();
        assert.strictEqual(s.sourceBytes, PAGES * PAGE);
        assert.strictEqual(s.residentBytes, PAGES * PAGE);
        assert.deepStrictEqual(errors, []);
        assert.strictEqual(listener.received, 4);
      } finally {
        listener.close();
        image.close();
      }
    });
  }

  it('the byte cap evicts the coldest clean pages and reads them again; a clone\'s own pages stay', async function () {
    const r = await runChild(`
      const fs = require('fs');
      const { SharedImage, PageSource } = require(${JSON.stringify(DIST)});
      const PAGE = ${PAGE};
      (async () => {
        const data = fs.readFileSync(${JSON.stringify(file)});
        const image = SharedImage.create(PageSource.file(${JSON.stringify(file)}), { maxBytes: 64 * PAGE, readahead: false });
        const clone = image.map();
        await clone.write(0, Buffer.from('private'));
        const pass = [];
        for (let p = 0; p < ${PAGES}; p++) pass.push((await clone.read(p * PAGE, PAGE)).equals(data.subarray(p * PAGE, (p + 1) * PAGE)) || p === 0);
        const first = image.stats();
        const blocks = fs.fstatSync(image.fd).blocks * 512;
        const again = await clone.read(PAGE, 8 * PAGE);
        const mine = (await clone.read(0, 7)).toString();
        const second = image.stats();
        console.log(JSON.stringify({ allRight: pass.every(Boolean), first, blocks, againRight: again.equals(data.subarray(PAGE, 9 * PAGE)), mine, second }));
        clone.unmap();
        image.close();
      })();
    `, { timeoutMs: 30000 });
    assert.strictEqual(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.strictEqual(o.allRight, true);
    assert.ok(o.first.residentBytes <= 64 * PAGE, JSON.stringify(o.first));
    assert.ok(o.blocks <= 64 * PAGE, `the memfd holds ${o.blocks} bytes, over the cap`);
    assert.ok(o.first.evictedPages >= PAGES - 64, JSON.stringify(o.first));
    // Pages 1-8 were dropped: read again, right, from the source again.
    assert.strictEqual(o.againRight, true);
    assert.strictEqual(o.second.demandFills - o.first.demandFills, 8);
    assert.strictEqual(o.second.sourceBytes - o.first.sourceBytes, 8 * PAGE);
    assert.strictEqual(o.mine, 'private');
  });

  it('working sets: the order clones first touched is recorded, and prefetch fills it into the next image once', async function () {
    const set = path.join(dir, 'clones.ws');
    const r = await runChild(`
      const fs = require('fs');
      const { SharedImage, PageSource, readWorkingSet } = require(${JSON.stringify(DIST)});
      const PAGE = ${PAGE};
      const set = ${JSON.stringify(set)};
      (async () => {
        const a = SharedImage.create(PageSource.file(${JSON.stringify(file)}), { record: set });
        const c1 = a.map();
        const c2 = a.map();
        // Page by page: the order of first touches is the test's, not memcpy's.
        for (const [c, p] of [[c1, 40], [c1, 41], [c1, 42], [c1, 43], [c2, 7], [c2, 8], [c2, 40]]) await c.read(p * PAGE, PAGE);
        c1.unmap(); c2.unmap();
        a.close();
        const saved = readWorkingSet(set).runs.map((x) => [x.first, x.count]);
        const b = SharedImage.create(PageSource.file(${JSON.stringify(file)}), { prefetch: set });
        for (let i = 0; i < 500 && b.stats().prefetched < 6; i++) await new Promise((r) => setTimeout(r, 10));
        const prefetched = b.stats();
        const c3 = b.map();
        const right = (await c3.read(40 * PAGE, 4 * PAGE)).equals(fs.readFileSync(${JSON.stringify(file)}).subarray(40 * PAGE, 44 * PAGE));
        const after = b.stats();
        console.log(JSON.stringify({ saved, prefetched, right, after }));
        c3.unmap();
        b.close();
      })();
    `, { timeoutMs: 30000 });
    assert.strictEqual(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.deepStrictEqual(o.saved, [[40, 4], [7, 2]]);
    assert.strictEqual(o.prefetched.prefetched, 6);
    assert.strictEqual(o.prefetched.sourceBytes, 6 * PAGE);
    assert.strictEqual(o.right, true);
    assert.strictEqual(o.after.demandFills, 0);
    assert.strictEqual(o.after.sourceBytes, 6 * PAGE);
  });

  it('a clone\'s first fault fills 4 pages ahead into the image (adaptive), one with readahead: false; never past the image\'s end', async function () {
    const r = await runChild(`
      const { SharedImage, PageSource } = require(${JSON.stringify(DIST)});
      const out = {};
      for (const readahead of [undefined, false]) {
        const image = SharedImage.create(PageSource.file(${JSON.stringify(file)}), readahead === undefined ? {} : { readahead });
        const clone = image.map();
        const view = new Uint8Array(clone.buffer);
        const first = view[10 * ${PAGE}];
        const afterOne = image.stats().filledPages;
        const last = view[${(PAGES - 1) * PAGE}];
        out[String(readahead)] = { afterOne, afterLast: image.stats().filledPages, bytes: [first, last] };
        clone.unmap();
        image.close();
      }
      console.log(JSON.stringify(out));
    `, { timeoutMs: 15000 });
    assert.strictEqual(r.timedOut, false);
    assert.strictEqual(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim());
    const bytes = [data[10 * PAGE], data[(PAGES - 1) * PAGE]];
    assert.deepStrictEqual(o.undefined, { afterOne: 4, afterLast: 5, bytes });
    assert.deepStrictEqual(o.false, { afterOne: 1, afterLast: 2, bytes });
  });

  it('clones alone do not keep a process alive, and the JS thread may read a clone itself (a native source answers)', async function () {
    const r = await runChild(`
      const { SharedImage, PageSource } = require(${JSON.stringify(DIST)});
      const image = SharedImage.create(PageSource.file(${JSON.stringify(file)}));
      const clone = image.map();
      const view = new Uint8Array(clone.buffer);
      let sum = 0;
      for (let i = 0; i < view.length; i += ${PAGE}) sum += view[i];
      console.log(sum);
    `, { timeoutMs: 15000 });
    assert.strictEqual(r.timedOut, false);
    assert.strictEqual(r.code, 0, r.stderr);
    let sum = 0;
    for (let i = 0; i < data.length; i += PAGE) sum += data[i];
    assert.strictEqual(Number(r.stdout.trim()), sum);
  });
});
