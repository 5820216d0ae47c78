// Regions of 2 GiB and more: Node makes no external ArrayBuffer past buffer.constants.MAX_LENGTH
// (4 GiB on Node 20), and refusing one used to abort the process with a double free. Each size
// runs in a child: an abort or a hang fails the case instead of the run. Only a few pages of the
// mapping are ever touched (the rest is untouched virtual memory).
const assert = require('assert');
const { describeNative, runChild, scaled, PAGE } = require('../helpers');

const SIZES = [2 ** 31, 2 ** 32, 2 ** 32 + PAGE, 2 ** 33];

function expectClean(r) {
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, info);
  assert.strictEqual(r.signal, null, info);
  assert.strictEqual(r.code, 0, info);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

describeNative('reliability: regions of 2 GiB to 8 GiB', function () {
  this.timeout(scaled(60000));

  for (const size of SIZES) {
    it(`${size} bytes: buffer gives the memory or a coded RangeError naming the limit; read, write and serve work`, async () => {
      const r = await runChild(`
        const { Userfaultfd, Region, PageSource } = require('./dist');
        const { constants } = require('buffer');
        const PAGE = ${PAGE}, size = ${size};
        (async () => {
          const region = Region.map(size, { backend: 'native' });
          const out = { size };
          try {
            const b = region.buffer;
            out.buffer = b.byteLength;
            new Uint8Array(b)[size - 1] = 9;          // the last byte, through the buffer
          } catch (e) {
            out.error = { name: e.name, code: e.code, limit: e.limit, message: e.message };
          }
          out.limit = constants.MAX_LENGTH;
          const uffd = Userfaultfd.open({ backend: 'native' });
          const source = Buffer.alloc(2 * PAGE, 7);
          uffd.serve(region, PageSource.buffer(source));
          out.first = (await region.read(0, 4))[0];                 // from the source
          out.last = [...(await region.read(size - 4, 4))];         // past the source: zeros (or the 9)
          await region.write(size - 2 * PAGE, Buffer.from('far'));  // a fault near the end, answered
          out.far = (await region.read(size - 2 * PAGE, 3)).toString();
          await region.write(size / 2 + PAGE, Buffer.from('mid'));
          out.mid = (await region.read(size / 2 + PAGE, 3)).toString();
          uffd.close();
          region.unmap();
          console.log(JSON.stringify(out));
        })();`, { timeoutMs: 30000 });
      const out = expectClean(r);
      assert.strictEqual(out.first, 7);
      assert.strictEqual(out.far, 'far');
      assert.strictEqual(out.mid, 'mid');
      if (size <= out.limit) {
        assert.strictEqual(out.buffer, size, JSON.stringify(out.error));
        assert.deepStrictEqual(out.last, [0, 0, 0, 9]);
      } else {
        assert.strictEqual(out.error.name, 'RangeError');
        assert.strictEqual(out.error.code, 'ERR_BUFFER_TOO_LARGE');
        assert.strictEqual(out.error.limit, out.limit);
        assert.match(out.error.message, new RegExp(String(out.limit)));
        assert.deepStrictEqual(out.last, [0, 0, 0, 0]);
      }
    });
  }

  it('the binding itself, called directly past the limit, throws a coded RangeError (no abort)', async () => {
    const r = await runChild(`
      const binding = require('node-gyp-build')(process.cwd());
      const region = new binding.Region(2 ** 32 + ${PAGE}, false, false);
      const out = {};
      try { out.length = region.buffer.byteLength; } catch (e) { out.name = e.name; out.code = e.code; }
      try { out.again = region.buffer.byteLength; } catch (e) { out.againCode = e.code; }
      region.unmap();
      global.gc && global.gc();
      console.log(JSON.stringify(out));`, { timeoutMs: 30000 });
    const out = expectClean(r);
    const { constants } = require('buffer');
    if (2 ** 32 + PAGE <= constants.MAX_LENGTH) {
      assert.strictEqual(out.length, 2 ** 32 + PAGE);
    } else {
      assert.deepStrictEqual(out, { name: 'RangeError', code: 'ERR_BUFFER_TOO_LARGE', againCode: 'ERR_BUFFER_TOO_LARGE' });
    }
  });
});
