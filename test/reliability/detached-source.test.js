// A served buffer whose ArrayBuffer is then detached (transferred away, the copy dropped and
// collected): reads returned freed heap bytes. The region must only ever hold the source's
// bytes, zeros, or a coded error. Runs in a child (gc exposed): a crash fails the case.
const assert = require('assert');
const { describeBackends, runChild, PAGE } = require('../helpers');

// Below malloc's mmap threshold (128 KiB): freed memory is reused by the heap. Whole pages: one
// on 64 KiB-page kernels.
const SIZE = Math.max(PAGE, 64 * 1024);

function run(backend, share) {
  return runChild(`
    require('v8').setFlagsFromString('--expose-gc');
    const gc = require('vm').runInNewContext('gc');
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const SIZE = ${SIZE};
    const expected = (i) => (i * 7 + 3) & 0xff;
    const region = Region.map(SIZE, { backend: '${backend}' });
    const uffd = Userfaultfd.open({ backend: '${backend}' });
    const source = new Uint8Array(${share ? 'new SharedArrayBuffer(SIZE)' : 'SIZE'});
    for (let i = 0; i < SIZE; i++) source[i] = expected(i);
    uffd.serve(region, PageSource.buffer(source));
    (async () => {
      const out = {};
      if (!${share}) {
        structuredClone(source.buffer, { transfer: [source.buffer] }); // detached here; the copy is dropped
        out.detached = source.byteLength === 0;
      }
      for (let round = 0; round < 5; round++) {
        gc();
        const junk = [];
        for (let i = 0; i < 200; i++) junk.push(new Uint8Array(SIZE).fill(0xee));  // reuse the freed memory
      }
      const got = await region.read(0, SIZE);
      let bad = -1;
      for (let i = 0; i < SIZE; i++) if (got[i] !== expected(i)) { bad = i; break; }
      out.firstWrong = bad;
      out.sample = got[bad < 0 ? 0 : bad];
      uffd.close();
      region.unmap();
      console.log(JSON.stringify(out));
    })();`, { timeoutMs: 20000 });
}

describeBackends('reliability: a served buffer detached while served', (backend) => {
  it('after structuredClone(..., { transfer }) and gc(), the region reads the bytes served, never freed heap', async () => {
    const r = await run(backend, false);
    assert.strictEqual(r.code, 0, `code ${r.code} signal ${r.signal}\n${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim());
    assert.strictEqual(out.detached, true);
    assert.strictEqual(out.firstWrong, -1, `byte ${out.firstWrong} reads 0x${out.sample.toString(16)}`);
  });

  it('a SharedArrayBuffer source (which cannot be detached) still serves its bytes', async () => {
    const r = await run(backend, true);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(JSON.parse(r.stdout.trim()).firstWrong, -1);
  });
});
