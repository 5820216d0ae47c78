// Native page sources: read-ahead windows, residency, refill after dontneed, stats, races.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { PAGE, pattern, delay, describeNative } = require('../helpers');

const MiB = 1 << 20;
const MAX_WINDOW = 4 * MiB; // native/sources/page_source.h kMaxWindow

/** Resolves once `check()` is true (the reader thread records latency after it answers). */
async function eventually(check, what) {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await delay(2);
  }
  assert.fail(`never: ${what}`);
}

describeNative('serve: read-ahead, residency, dontneed, stats', function () {
  let dir;
  let file;
  let data;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-serve-ra-'));
    file = path.join(dir, 'data.bin');
    data = pattern(64 * MiB, 9);
    fs.writeFileSync(file, data);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('touching 10 pages of a 64 MiB file region loads only their windows', () => {
    // Pages far apart: no fault is where a sequential reader would fault next.
    const pages = [3, 1000, 2500, 4000, 5100, 7777, 9000, 11111, 13000, 16000];
    const cases = { off: [false, PAGE], 'fixed 64 KiB': [64 * 1024, 64 * 1024], adaptive: ['adaptive', PAGE] };
    for (const [name, [readahead, window]] of Object.entries(cases)) {
      it(`read-ahead ${name}: at most ${window / PAGE} page(s) per touch`, async () => {
        const uffd = Userfaultfd.open();
        const region = Region.map(64 * MiB);
        try {
          uffd.serve(region, PageSource.file(file), { readahead });
          const view = new Uint8Array(region.buffer);
          for (const p of pages) assert.strictEqual(view[p * PAGE + 17], data[p * PAGE + 17]);
          const resident = region.residentPages();
          assert.ok(resident >= pages.length, `resident ${resident}`);
          assert.ok(resident <= pages.length * (window / PAGE), `resident ${resident} pages`);
          assert.strictEqual(uffd.stats().faults, pages.length);
          await eventually(() => uffd.stats().bytes === resident * PAGE, `bytes ${uffd.stats().bytes} = ${resident} pages`);
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }

    it('adaptive: a sequential reader gets growing windows, capped at 4 MiB; a jump resets it', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(64 * MiB);
      try {
        uffd.serve(region, PageSource.file(file));
        const view = new Uint8Array(region.buffer);
        for (let off = 0; off < 32 * MiB; off += PAGE) assert.strictEqual(view[off], data[off]);
        // 1, 2, 4, ... 1024 pages (11 faults, 8 MiB - 4 KiB), then 4 MiB windows.
        assert.strictEqual(uffd.stats().faults, 11 + Math.ceil((32 * MiB - (2047 * PAGE)) / MAX_WINDOW));
        const resident = region.residentPages();
        assert.ok(resident * PAGE >= 32 * MiB && resident * PAGE < 32 * MiB + MAX_WINDOW, `resident ${resident}`);
        await eventually(() => uffd.stats().bytes === resident * PAGE, 'bytes counted');
        const before = region.residentPages();
        assert.strictEqual(view[60 * MiB + 5], data[60 * MiB + 5]); // a jump: one page again
        assert.strictEqual(region.residentPages(), before + 1);
      } finally {
        uffd.close();
        region.unmap();
      }
    });

    it('pages already present inside a window are skipped, not overwritten', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(64 * PAGE);
      try {
        uffd.serve(region, PageSource.file(file), { readahead: 64 * PAGE });
        // Write page 20 first (its fault fills 20..63), then fault page 0 (window 0..63).
        await region.write(20 * PAGE, Buffer.alloc(PAGE, 0xee));
        const view = new Uint8Array(region.buffer);
        assert.strictEqual(view[0], data[0]); // window 0..63 meets pages 20..63 present
        const all = await region.read(0, 64 * PAGE);
        const expected = Buffer.from(data.subarray(0, 64 * PAGE));
        expected.fill(0xee, 20 * PAGE, 21 * PAGE);
        assert.ok(all.equals(expected));
        assert.strictEqual(region.residentPages(), 64);
        await eventually(() => uffd.stats().bytes === 64 * PAGE, 'no page copied twice, none missing');
      } finally {
        uffd.close();
        region.unmap();
      }
    });
  });

  describe('dontneed drops pages; a later fault fills them again from the source', () => {
    for (const features of [[], ['EVENT_REMOVE']]) {
      it(`features [${features}]`, async () => {
        const uffd = Userfaultfd.open({ features });
        const region = Region.map(256 * PAGE);
        const removed = [];
        uffd.on('remove', (e) => removed.push(e));
        try {
          uffd.serve(region, PageSource.file(file));
          const view = new Uint8Array(region.buffer);
          const expected = data.subarray(0, 256 * PAGE);
          assert.ok(Buffer.from(region.buffer).equals(expected));
          view.fill(0x55, 10 * PAGE, 50 * PAGE); // the program changes its private copy
          assert.strictEqual(view[20 * PAGE], 0x55);
          region.dontneed(0, 128 * PAGE);
          assert.strictEqual(region.residentPages(), 128);
          assert.strictEqual(view[20 * PAGE], data[20 * PAGE]); // main thread, refilled
          assert.ok((await region.read(0, 256 * PAGE)).equals(expected)); // thread pool
          assert.ok(Buffer.from(region.buffer).equals(expected));
          if (features.length) {
            await eventually(() => removed.length === 1, 'a remove event');
            assert.strictEqual(removed[0].start, region.address);
            assert.strictEqual(removed[0].end, region.address + BigInt(128 * PAGE));
          }
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }
  });

  it('stats(): faults, copies, bytes, wakeups and latency move as expected', async () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(16 * PAGE);
    try {
      assert.deepStrictEqual(uffd.stats(), { faults: 0, copies: 0, bytes: 0, wakeups: 0, latencyNs: { p50: 0, p99: 0 }, prefetched: 0, demandFaults: 0, prefetchMisses: 0 });
      uffd.serve(region, PageSource.buffer(pattern(16 * PAGE, 1)), { readahead: false });
      const view = new Uint8Array(region.buffer);
      assert.strictEqual(view[0], pattern(PAGE, 1)[0]);
      let s = uffd.stats();
      assert.strictEqual(s.faults, 1);
      assert.strictEqual(s.copies, 1);
      assert.strictEqual(s.bytes, PAGE);
      await eventually(() => uffd.stats().latencyNs.p50 > 0, 'a latency sample');
      s = uffd.stats();
      assert.ok(s.latencyNs.p99 >= s.latencyNs.p50);
      for (let p = 1; p < 16; p++) assert.strictEqual(view[p * PAGE], pattern(16 * PAGE, 1)[p * PAGE]);
      s = uffd.stats();
      assert.strictEqual(s.faults, 16);
      assert.strictEqual(s.copies, 16);
      assert.strictEqual(s.bytes, 16 * PAGE);
      uffd.wake(region);
      assert.strictEqual(uffd.stats().wakeups, s.wakeups + 1);
      assert.throws(() => { uffd.close(); uffd.stats(); }, { code: 'ERR_UFFD_CLOSED' });
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  describe('races', () => {
    it('several threads fault on the same windows: every byte is the source\'s', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(16 * MiB);
      try {
        uffd.serve(region, PageSource.file(file)); // adaptive
        const reads = [];
        // Four streams at once on the thread pool, overlapping, in 64 KiB steps.
        for (let s = 0; s < 4; s++) {
          reads.push((async () => {
            for (let off = s * 2 * MiB; off < s * 2 * MiB + 8 * MiB; off += 64 * 1024) {
              const got = await region.read(off, 64 * 1024);
              assert.ok(got.equals(data.subarray(off, off + 64 * 1024)), `at ${off}`);
            }
          })());
        }
        await Promise.all(reads);
        assert.ok(Buffer.from(region.buffer).equals(data.subarray(0, 16 * MiB)));
        await eventually(() => uffd.stats().bytes === 16 * MiB, `16 MiB copied (${uffd.stats().bytes}): no page twice, none missing`);
      } finally {
        uffd.close();
        region.unmap();
      }
    });

    it('dontneed while other threads fault (REMOVE events, EAGAIN, retries): no hang, right bytes', async () => {
      const uffd = Userfaultfd.open({ features: ['EVENT_REMOVE'] });
      const region = Region.map(4 * MiB);
      let removes = 0;
      uffd.on('remove', () => removes++);
      try {
        uffd.serve(region, PageSource.file(file), { readahead: 256 * 1024 });
        const expected = data.subarray(0, 4 * MiB);
        let stop = false;
        const readers = [];
        for (let t = 0; t < 3; t++) {
          readers.push((async () => {
            let n = 0;
            while (!stop || n < 20) {
              const off = ((n * 7 + t * 13) % 64) * 64 * 1024;
              const got = await region.read(off, 64 * 1024);
              assert.ok(got.equals(expected.subarray(off, off + 64 * 1024)), `reader ${t} at ${off}`);
              n++;
            }
          })());
        }
        for (let i = 0; i < 200; i++) {
          const p = (i * 37) % 1024;
          region.dontneed(p * PAGE, Math.min(64, 1024 - p) * PAGE);
          if (i % 10 === 0) await delay(1);
        }
        stop = true;
        await Promise.all(readers);
        assert.ok((await region.read(0, 4 * MiB)).equals(expected));
        await eventually(() => removes > 0, 'remove events');
      } finally {
        uffd.close();
        region.unmap();
      }
    });
  });
});
