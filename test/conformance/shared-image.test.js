// SharedImage: one image, many clones, on both backends (the simulator copies the image into
// each clone: the same bytes and source reads, no sharing). Faults are raised with region.read
// and region.write (the thread pool), never by the JS thread.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource, SharedImage } = require('../../dist');
const { describeBackends, pattern, PAGE, perTestUffd } = require('../helpers');

const PAGES = 32;

/** A PageSource.custom over `data` that counts the reads of each page. */
function countingSource(data, options = {}) {
  const reads = new Array(Math.ceil(data.length / PAGE)).fill(0);
  const source = PageSource.custom(async (offset, length) => {
    for (let p = offset / PAGE; p < (offset + length) / PAGE; p++) reads[p]++;
    await new Promise((r) => setImmediate(r));
    return data.subarray(offset, offset + length);
  }, { size: data.length, chunkSize: 4 * PAGE, ...options });
  return { source, reads };
}

describeBackends('SharedImage', (backend) => {
  let dir;
  let file;
  let data;
  const images = [];
  const image = (source, options = {}) => {
    const img = SharedImage.create(source, { backend, ...options });
    images.push(img);
    return img;
  };
  const clones = [];
  const clone = (img) => {
    const r = img.map();
    clones.push(r);
    return r;
  };
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-image-'));
    file = path.join(dir, 'image.bin');
    data = pattern(PAGES * PAGE, 11);
    fs.writeFileSync(file, data);
  });
  afterEach(() => {
    for (const r of clones.splice(0)) r.unmap();
    for (const img of images.splice(0)) img.close();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const mode of ['missing', 'minor']) {
    it(`bytes correct across clones, from a file, a buffer and a custom source (mode '${mode}')`, async () => {
      const sources = [PageSource.file(file), PageSource.buffer(data), countingSource(data).source];
      for (const source of sources) {
        const img = image(source, { mode });
        assert.strictEqual(img.size, PAGES * PAGE);
        const all = [clone(img), clone(img), clone(img)];
        const got = await Promise.all(all.map((r) => r.read(0, PAGES * PAGE)));
        for (const g of got) assert.deepStrictEqual(g, data);
      }
    });

    it(`a clone's writes are its own: never seen by another clone or the image (mode '${mode}')`, async () => {
      const img = image(PageSource.file(file), { mode });
      const a = clone(img);
      const b = clone(img);
      await a.write(3 * PAGE + 5, Buffer.from('written by a'));
      await b.write(7 * PAGE, Buffer.from('written by b'));
      const fresh = clone(img); // mapped after both wrote
      assert.strictEqual((await a.read(3 * PAGE + 5, 12)).toString(), 'written by a');
      assert.deepStrictEqual(await b.read(3 * PAGE, PAGE), data.subarray(3 * PAGE, 4 * PAGE));
      assert.deepStrictEqual(await a.read(7 * PAGE, PAGE), data.subarray(7 * PAGE, 8 * PAGE));
      assert.deepStrictEqual(await fresh.read(0, PAGES * PAGE), data);
    });
  }

  it('one source read per page with concurrent clones, however many fault on it at once', async () => {
    const { source, reads } = countingSource(data);
    const img = image(source);
    const all = [clone(img), clone(img), clone(img), clone(img)];
    // Every clone asks for every page at once, page by page: the faults race on each window.
    const got = await Promise.all(all.flatMap((r) => Array.from({ length: PAGES }, (_, p) => r.read(p * PAGE, PAGE))));
    for (let i = 0; i < got.length; i++) {
      const p = i % PAGES;
      assert.deepStrictEqual(got[i], data.subarray(p * PAGE, (p + 1) * PAGE));
    }
    assert.deepStrictEqual(reads, new Array(PAGES).fill(1));
    assert.strictEqual(img.stats().sourceBytes, PAGES * PAGE);
  });

  it('a native source is read at most once a page, whatever the clones touch; stats() counts it', async () => {
    const img = image(PageSource.file(file));
    const all = [clone(img), clone(img), clone(img)];
    await Promise.all(all.map((r) => r.read(0, PAGES * PAGE)));
    await all[1].read(0, PAGES * PAGE);
    const s = img.stats();
    assert.strictEqual(s.sourceBytes, PAGES * PAGE);
    assert.strictEqual(s.filledPages, PAGES);
    assert.strictEqual(s.residentBytes, PAGES * PAGE);
    assert.strictEqual(s.evictedPages, 0);
    assert.strictEqual(s.clones, 3);
  });

  it('REMOVE (dontneed) in one clone drops only its view: its writes go, the others keep theirs, no new read', async () => {
    const img = image(PageSource.file(file));
    const a = clone(img);
    const b = clone(img);
    assert.deepStrictEqual(await b.read(0, 4 * PAGE), data.subarray(0, 4 * PAGE));
    await a.write(2 * PAGE, Buffer.from('a2'));
    await b.write(2 * PAGE, Buffer.from('b2'));
    const before = img.stats().sourceBytes;
    a.dontneed(0, 4 * PAGE);
    assert.deepStrictEqual(await a.read(0, 4 * PAGE), data.subarray(0, 4 * PAGE));
    assert.strictEqual((await b.read(2 * PAGE, 2)).toString(), 'b2');
    assert.deepStrictEqual(await b.read(0, 2 * PAGE), data.subarray(0, 2 * PAGE));
    assert.strictEqual(img.stats().sourceBytes, before);
  });

  it('close order: closed first, the clones still read every page; the image goes with the last clone', async () => {
    const img = image(PageSource.file(file));
    const a = clone(img);
    const b = clone(img);
    assert.deepStrictEqual(await a.read(0, PAGE), data.subarray(0, PAGE));
    img.close();
    assert.strictEqual(img.closed, true);
    assert.throws(() => img.map(), { code: 'ERR_UFFD_IMAGE_CLOSED', message: /shared image is closed/ });
    // Pages no clone touched before close() are still read from the source.
    assert.deepStrictEqual(await b.read(0, PAGES * PAGE), data);
    assert.deepStrictEqual(await a.read(PAGE, (PAGES - 1) * PAGE), data.subarray(PAGE));
    a.unmap();
    b.unmap();
    await waitFor(() => img.stats().clones === 0);
    assert.strictEqual(img.fd, -1);
    assert.strictEqual(img.stats().sourceBytes, PAGES * PAGE);
  });

  it('close order: clones unmapped first, close() lets the image go at once; close() is idempotent', async () => {
    const img = image(PageSource.file(file));
    const a = clone(img);
    await a.read(0, PAGES * PAGE);
    a.unmap();
    await waitFor(() => img.stats().clones === 0);
    img.close();
    img.close();
    assert.strictEqual(img.fd, -1);
    assert.throws(() => img.saveWorkingSet(path.join(dir, 'ws')), { code: 'ERR_UFFD_IMAGE_CLOSED' });
  });

  describe('bad input', () => {
    let uffd;
    const map = perTestUffd(backend, (u) => { uffd = u; });

    it('a range of another size than the image: ERR_UFFD_IMAGE_SIZE, before anything is registered', () => {
      const img = image(PageSource.file(file));
      const r = map(PAGES / 2);
      assert.throws(() => uffd.serve(r, img), { code: 'ERR_UFFD_IMAGE_SIZE' });
      assert.strictEqual(img.stats().clones, 0);
    });

    it('serve() of an image takes readahead only; the other options are the image\'s', () => {
      const img = image(PageSource.file(file));
      const r = map(PAGES);
      assert.throws(() => uffd.serve(r, img, { record: path.join(dir, 'x') }), { code: 'ERR_UFFD_UNSUPPORTED' });
      assert.throws(() => uffd.serve(r, img, { removed: 'zero' }), { code: 'ERR_UFFD_UNSUPPORTED' });
      assert.throws(() => uffd.serve(r, img, { readahed: 0 }), { code: 'ERR_UFFD_UNKNOWN_OPTION' });
    });

    it('an options getter that closes the uffd mid-serve(): ERR_UFFD_CLOSED, and the image gains no clone', () => {
      const img = image(PageSource.file(file));
      const r = map(PAGES);
      const o = { get readahead() { uffd.close(); return undefined; } };
      assert.throws(() => uffd.serve(r, img, o), { name: 'Error', code: 'ERR_UFFD_CLOSED' });
      assert.strictEqual(img.stats().clones, 0);
    });

    it('a closed image cannot be served', () => {
      const img = image(PageSource.file(file));
      img.close();
      assert.throws(() => uffd.serve(map(PAGES), img), { code: 'ERR_UFFD_IMAGE_CLOSED', message: /closed/ });
    });

    it('create(): bad source, size, mode, cap and keys are refused before anything is made', () => {
      assert.throws(() => SharedImage.create('image.bin', { backend }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => SharedImage.create(PageSource.zero(), { backend }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SharedImage.create(PageSource.file(file), { backend, size: PAGE + 1 }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SharedImage.create(PageSource.file(file), { backend, mode: 'shared' }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => SharedImage.create(PageSource.file(file), { backend, maxBytes: PAGE }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SharedImage.create(PageSource.file(file), { backend, maxbytes: PAGE }), { code: 'ERR_UFFD_UNKNOWN_OPTION' });
      assert.throws(() => SharedImage.create(PageSource.file(path.join(dir, 'missing.bin')), { backend }), { code: 'ENOENT' });
    });

    it('a clone of the other backend\'s uffd is refused', () => {
      const other = backend === 'native' ? 'simulator' : 'native';
      let img;
      try {
        img = image(PageSource.file(file), { backend: other });
      } catch {
        return; // the other backend cannot serve here: nothing to mix up
      }
      assert.throws(() => uffd.serve(map(PAGES), img), { code: 'ERR_INVALID_ARG_TYPE' });
    });
  });

  it('an image larger than its source reads zeros past it; a zero source needs a size', async () => {
    const img = image(PageSource.buffer(data.subarray(0, 3 * PAGE + 100)), { size: 8 * PAGE });
    const r = clone(img);
    const bytes = await r.read(0, 8 * PAGE);
    assert.deepStrictEqual(bytes.subarray(0, 3 * PAGE + 100), data.subarray(0, 3 * PAGE + 100));
    assert.deepStrictEqual(bytes.subarray(3 * PAGE + 100), Buffer.alloc(5 * PAGE - 100));
    const zero = clone(image(PageSource.zero(), { size: 4 * PAGE }));
    assert.deepStrictEqual(await zero.read(0, 4 * PAGE), Buffer.alloc(4 * PAGE));
  });
});

/** Waits (bounded) until `cond()` holds: a clone is let go once its munmap has happened. */
async function waitFor(cond) {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}
