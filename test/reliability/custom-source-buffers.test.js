// PageSource.custom whose read() hands back a buffer it changes afterwards (issue 24), on both
// backends, each in a child with a deadline: a buffer detached or shrunk once read() has
// settled, and one pooled buffer reused by every read. The bytes served must be those returned
// when the promise settled: the package copies them on receipt. Nothing may be thrown out of the
// fault path, and no faulting thread may be left waiting.
const assert = require('assert');
const { describeBackends, runUffdChild } = require('../helpers');

const DEADLINE = 20000;

/**
 * A child serving 16 pages from PageSource.custom(read) in 4-page windows, one page copied per
 * fault: the first page of each window is faulted (four reads at once), then the others, which
 * are copied from the cached windows, that is from the bytes read() gave. Prints whether each
 * page read back the source's bytes, the 'error' codes, and any uncaught exception.
 */
function serveAll(backend, readSource) {
  return runUffdChild(backend, `
    const source = Buffer.alloc(16 * PAGE);
    for (let i = 0; i < source.length; i++) source[i] = (Math.floor(i / PAGE) * 37 + i) & 0xff;
    out.errors = [];
    out.uncaught = [];
    process.on('uncaughtException', (e) => out.uncaught.push(\`\${e.constructor.name} \${e.code} \${e.message}\`));
    u.on('error', (e) => out.errors.push(e.code));
    const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const read = ${readSource};
    u.serve(r, PageSource.custom(read, { size: source.length, chunkSize: 4 * PAGE, concurrency: 4, timeoutMs: 2000, retries: 1 }),
      { readahead: false });
    const page = (p) => r.read(p * PAGE, PAGE).then((b) => b.equals(source.subarray(p * PAGE, (p + 1) * PAGE)), (e) => e.code);
    const firsts = [0, 4, 8, 12];
    const rest = Array.from({ length: 16 }, (_, p) => p).filter((p) => !firsts.includes(p));
    out.pages = [];
    for (const [i, ok] of (await Promise.all(firsts.map(page))).entries()) out.pages[firsts[i]] = ok;
    for (const [i, ok] of (await Promise.all(rest.map(page))).entries()) out.pages[rest[i]] = ok;`,
  { pages: 16, timeoutMs: DEADLINE });
}

const ALL_RIGHT = Array(16).fill(true);

describeBackends('reliability: custom sources that change their buffers', (backend) => {
  beforeEach(function () { this.timeout(DEADLINE + 10000); });

  it('a buffer detached after read() settled: every page is the source\'s, nothing thrown, no thread left waiting', async () => {
    const out = await serveAll(backend, `async (offset, length) => {
      const ab = new ArrayBuffer(length);
      new Uint8Array(ab).set(source.subarray(offset, offset + length));
      setImmediate(() => structuredClone(ab, { transfer: [ab] })); // detached once returned
      return new Uint8Array(ab);
    }`);
    assert.deepStrictEqual(out.uncaught, []);
    assert.deepStrictEqual(out.pages, ALL_RIGHT, JSON.stringify(out));
    assert.deepStrictEqual(out.errors, []);
  });

  it('a resizable buffer shrunk to nothing after read() settled: every page is the source\'s', async () => {
    const out = await serveAll(backend, `async (offset, length) => {
      const ab = new ArrayBuffer(length, { maxByteLength: length });
      new Uint8Array(ab).set(source.subarray(offset, offset + length));
      setImmediate(() => ab.resize(0));
      return new Uint8Array(ab, 0, length);
    }`);
    assert.deepStrictEqual(out.uncaught, []);
    assert.deepStrictEqual(out.pages, ALL_RIGHT, JSON.stringify(out));
    assert.deepStrictEqual(out.errors, []);
  });

  it('one pooled buffer reused by every read(): each window gets its own bytes, never another\'s', async () => {
    const out = await serveAll(backend, `(() => {
      const pool = new Uint8Array(4 * PAGE);
      let n = 0;
      return async (offset, length) => {
        await delay(1 + (n++ % 4) * 3); // reads in flight at once settle in another order
        pool.set(source.subarray(offset, offset + length));
        return pool.subarray(0, length);
      };
    })()`);
    assert.deepStrictEqual(out.uncaught, []);
    assert.deepStrictEqual(out.pages, ALL_RIGHT, JSON.stringify(out));
  });
});
