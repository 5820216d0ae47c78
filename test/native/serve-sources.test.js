// Native page sources (uffd.serve): each source kind, each read-ahead mode, byte for byte.
// Native-only: the main thread touches served memory synchronously, which only the kernel
// backend answers without JavaScript.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource } = require('../../dist');
const { PAGE, pattern, runChild, describeNative, faultsWaiting } = require('../helpers');

const SIZE = 4 * 1024 * 1024;

/** A deterministic pseudo-random generator, so that a failure can be replayed. */
function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describeNative('serve: page sources, byte for byte', function () {
  let dir;
  let file;
  let data; // the file's bytes
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-serve-'));
    file = path.join(dir, 'data.bin');
    data = pattern(SIZE + 4 * PAGE, 7);
    fs.writeFileSync(file, data);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  // Each kind: how to make it, and what the region must read as.
  const OFFSET = 3 * PAGE + 123; // not page aligned on purpose
  const kinds = {
    zero: () => ({ source: PageSource.zero(), expected: Buffer.alloc(SIZE) }),
    buffer: () => {
      const buf = pattern(SIZE, 3);
      return { source: PageSource.buffer(buf), expected: buf };
    },
    'file by path (pread)': () => ({ source: PageSource.file(file), expected: data.subarray(0, SIZE) }),
    'file by path (mmap)': () => ({ source: PageSource.file(file, { mode: 'mmap' }), expected: data.subarray(0, SIZE) }),
    'file by fd': () => {
      const fd = fs.openSync(file, 'r');
      try {
        // The source keeps its own copy of the fd: closing ours right away changes nothing.
        return { source: PageSource.file(fd), expected: data.subarray(0, SIZE), fd };
      } finally {
        // closed after serve(), below
      }
    },
    'file with offset (pread)': () => ({ source: PageSource.file(file, { offset: OFFSET }), expected: data.subarray(OFFSET, OFFSET + SIZE) }),
    'file with offset (mmap)': () => ({ source: PageSource.file(file, { offset: OFFSET, mode: 'mmap' }), expected: data.subarray(OFFSET, OFFSET + SIZE) }),
  };
  const modes = { off: false, 'fixed 64 KiB': 64 * 1024, adaptive: 'adaptive' };

  for (const [kind, make] of Object.entries(kinds)) {
    for (const [modeName, readahead] of Object.entries(modes)) {
      it(`${kind}, read-ahead ${modeName}: random offsets read the source's bytes`, async () => {
        const uffd = Userfaultfd.open();
        const region = Region.map(SIZE);
        try {
          const { source, expected, fd } = make();
          uffd.serve(region, source, { readahead });
          if (fd !== undefined) fs.closeSync(fd);
          const view = new Uint8Array(region.buffer);
          const rand = lcg(kind.length * 31 + modeName.length);
          // Off the JS thread (the thread pool) ...
          for (let i = 0; i < 40; i++) {
            const off = Math.floor(rand() * (SIZE - 64));
            const len = 1 + Math.floor(rand() * 64);
            assert.deepStrictEqual(await region.read(off, len), expected.subarray(off, off + len), `at ${off}`);
          }
          // ... and on it, synchronously.
          for (let i = 0; i < 200; i++) {
            const off = Math.floor(rand() * SIZE);
            assert.strictEqual(view[off], expected[off], `byte ${off}`);
          }
          // Then everything, in order.
          assert.ok(Buffer.from(region.buffer).equals(expected), 'whole region equals the source');
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }
  }

  it('the main thread reads a served region synchronously, with no self-fault error', () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(64 * PAGE);
    const errors = [];
    uffd.on('error', (e) => errors.push(e));
    try {
      const buf = pattern(64 * PAGE, 11);
      uffd.serve(region, PageSource.buffer(buf), { readahead: false });
      const view = new Uint8Array(region.buffer);
      for (let p = 63; p >= 0; p -= 3) assert.strictEqual(view[p * PAGE + 5], buf[p * PAGE + 5]);
      view[PAGE * 10] = 0xab; // writes fault too (a missing page is filled, then written)
      assert.strictEqual(view[PAGE * 10], 0xab);
      assert.strictEqual(view[PAGE * 10 + 1], buf[PAGE * 10 + 1]);
      assert.deepStrictEqual(errors, []);
    } finally {
      uffd.close();
      region.unmap();
    }
  });

  it('a shared (memfd) region is served too', () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(64 * PAGE, { shared: true });
    const zeros = Region.map(64 * PAGE, { shared: true });
    try {
      const buf = pattern(64 * PAGE, 13);
      uffd.serve(region, PageSource.buffer(buf));
      uffd.serve(zeros, PageSource.zero(), { readahead: 8 * PAGE });
      assert.ok(Buffer.from(region.buffer).equals(buf));
      assert.ok(Buffer.from(zeros.buffer).equals(Buffer.alloc(64 * PAGE)));
    } finally {
      uffd.close();
      region.unmap();
      zeros.unmap();
    }
  });

  describe('process lifetime', () => {
    it('serving alone does not keep the process alive (no close needed)', async () => {
      const r = await runChild(`
        const { Userfaultfd, Region, PageSource } = require('./dist');
        const uffd = Userfaultfd.open();
        const region = Region.map(1 << 20);
        uffd.serve(region, PageSource.buffer(Buffer.alloc(1 << 20, 7)));
        console.log(new Uint8Array(region.buffer)[5000]);
        region.read(8192, 4).then((b) => console.log(b[0]));
      `, { timeoutMs: 15000 });
      assert.strictEqual(r.timedOut, false);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.signal, null);
      assert.strictEqual(r.stdout, '7\n7\n');
    });

    it('process.exit() while thread-pool reads of served memory are in flight', async () => {
      const r = await runChild(`
        const { Userfaultfd, Region, PageSource } = require('./dist');
        const uffd = Userfaultfd.open();
        const region = Region.map(64 << 20);
        uffd.serve(region, PageSource.zero(), { readahead: false });
        for (let i = 0; i < 8; i++) region.read(i << 23, 8 << 20);
        setImmediate(() => process.exit(0));
      `, { timeoutMs: 15000 });
      assert.strictEqual(r.timedOut, false);
      assert.strictEqual(r.code, 0, r.stderr);
    });
  });

  describe('a source shorter than the region: the tail reads as zeros', () => {
    const LEN = 2 * PAGE + 1808; // ends inside page 2
    for (const mode of ['pread', 'mmap']) {
      it(`file (${mode})`, async () => {
        const short = path.join(dir, `short-${mode}.bin`);
        fs.writeFileSync(short, data.subarray(0, LEN));
        const uffd = Userfaultfd.open();
        const region = Region.map(8 * PAGE);
        try {
          uffd.serve(region, PageSource.file(short, { mode }), { readahead: false });
          const view = new Uint8Array(region.buffer);
          assert.strictEqual(view[8 * PAGE - 1], 0); // a page past the end first
          assert.strictEqual(view[LEN - 1], data[LEN - 1]); // then the partial page
          const all = await region.read(0, 8 * PAGE);
          const expected = Buffer.alloc(8 * PAGE);
          data.copy(expected, 0, 0, LEN);
          assert.ok(all.equals(expected));
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }
    it('file with an offset past its end: all zeros', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(4 * PAGE);
      try {
        uffd.serve(region, PageSource.file(file, { offset: data.length + PAGE }));
        assert.ok((await region.read(0, 4 * PAGE)).equals(Buffer.alloc(4 * PAGE)));
      } finally {
        uffd.close();
        region.unmap();
      }
    });
    it('buffer', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(8 * PAGE);
      try {
        const buf = pattern(LEN, 5);
        uffd.serve(region, PageSource.buffer(buf));
        const expected = Buffer.alloc(8 * PAGE);
        buf.copy(expected);
        assert.ok((await region.read(0, 8 * PAGE)).equals(expected));
      } finally {
        uffd.close();
        region.unmap();
      }
    });
    it('an empty file', async () => {
      const empty = path.join(dir, 'empty.bin');
      fs.writeFileSync(empty, '');
      const uffd = Userfaultfd.open();
      const region = Region.map(4 * PAGE);
      try {
        uffd.serve(region, PageSource.file(empty));
        assert.ok((await region.read(0, 4 * PAGE)).equals(Buffer.alloc(4 * PAGE)));
      } finally {
        uffd.close();
        region.unmap();
      }
    });
  });

  describe('a file truncated while served', () => {
    for (const mode of ['pread', 'mmap']) {
      it(`${mode}: the main thread reads zeros past the new end, never hangs`, async () => {
        const f = path.join(dir, `trunc-${mode}.bin`);
        fs.writeFileSync(f, data.subarray(0, 64 * PAGE));
        const uffd = Userfaultfd.open();
        const region = Region.map(64 * PAGE);
        const errors = [];
        uffd.on('error', (e) => errors.push(e));
        try {
          uffd.serve(region, PageSource.file(f, { mode }), { readahead: false });
          const view = new Uint8Array(region.buffer);
          assert.strictEqual(view[0], data[0]);
          fs.truncateSync(f, 10 * PAGE + 100);
          assert.strictEqual(view[10 * PAGE + 99], data[10 * PAGE + 99]);
          assert.strictEqual(view[10 * PAGE + 100], 0);
          assert.strictEqual(view[20 * PAGE], 0); // main thread: answered natively either way
          assert.deepStrictEqual(await region.read(30 * PAGE, PAGE), Buffer.alloc(PAGE)); // thread pool
          await new Promise((r) => setImmediate(r));
          if (mode === 'pread') {
            assert.deepStrictEqual(errors, []);
          } else {
            // The mapping cannot be read past the end (EFAULT): reported, answered by a zero page.
            assert.ok(errors.length >= 1);
            assert.strictEqual(errors[0].code, 'EFAULT');
            assert.strictEqual(errors[0].syscall, 'UFFDIO_COPY');
          }
        } finally {
          uffd.close();
          region.unmap();
        }
      });
    }
  });

  describe('a source that cannot be read fails at serve() time', () => {
    const cases = {
      'a missing file': () => [PageSource.file(path.join(dir, 'nope.bin')), 'ENOENT', 'open'],
      'a directory': () => [PageSource.file(dir), 'EISDIR', 'open'],
      'a write-only fd': () => {
        const fd = fs.openSync(path.join(dir, 'wo.bin'), 'w');
        return [PageSource.file(fd), 'EBADF', 'read', fd];
      },
      'a closed fd': () => {
        const fd = fs.openSync(file, 'r');
        fs.closeSync(fd);
        return [PageSource.file(fd), 'EBADF', 'dup'];
      },
    };
    for (const [name, make] of Object.entries(cases)) {
      it(`${name}`, async () => {
        const uffd = Userfaultfd.open();
        const region = Region.map(4 * PAGE);
        const [source, code, syscall, fd] = make();
        try {
          assert.throws(() => uffd.serve(region, source), (e) => {
            assert.strictEqual(e.code, code);
            assert.strictEqual(e.syscall, syscall);
            assert.match(e.message, new RegExp(code));
            return true;
          });
          // Nothing was left behind: the range was not registered, so it can be served again,
          // and its faults reach JavaScript in the meantime.
          uffd.on('pagefault', (e) => uffd.copy(e.address, pattern(PAGE, 2)));
          assert.deepStrictEqual(await region.read(0, PAGE), Buffer.alloc(PAGE)); // not registered: plain zero page
          uffd.serve({ start: region.address + BigInt(PAGE), length: PAGE }, PageSource.buffer(pattern(PAGE, 4)));
          assert.deepStrictEqual(await region.read(PAGE, PAGE), pattern(PAGE, 4));
        } finally {
          if (fd !== undefined) fs.closeSync(fd);
          uffd.close();
          region.unmap();
        }
      });
    }
  });

  describe('several served ranges on one uffd, JavaScript for the rest', () => {
    it('each range answers from its own source; faults between them reach the listener', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(12 * PAGE);
      const seen = [];
      try {
        uffd.register(region);
        uffd.on('pagefault', (e) => {
          seen.push(Number(e.address - region.address) / PAGE);
          uffd.copy(e.address, pattern(PAGE, 100));
        });
        const a = pattern(4 * PAGE, 1);
        uffd.serve({ start: region.address, length: 4 * PAGE }, PageSource.buffer(a), { readahead: 1 << 20 });
        uffd.serve({ start: region.address + BigInt(8 * PAGE), length: 4 * PAGE }, PageSource.file(file), { readahead: 1 << 20 });
        const view = new Uint8Array(region.buffer);
        assert.strictEqual(view[5], a[5]); // one fault fills the whole 4-page range, no more
        assert.strictEqual(region.residentPages(), 4, 'the read-ahead window stopped at the served range');
        const all = await region.read(0, 12 * PAGE);
        assert.ok(all.subarray(0, 4 * PAGE).equals(a));
        for (let p = 4; p < 8; p++) assert.ok(all.subarray(p * PAGE, (p + 1) * PAGE).equals(pattern(PAGE, 100)), `page ${p}`);
        assert.ok(all.subarray(8 * PAGE).equals(data.subarray(0, 4 * PAGE)));
        assert.deepStrictEqual(seen.sort((x, y) => x - y), [4, 5, 6, 7]);
      } finally {
        uffd.close();
        region.unmap();
      }
    });

    it('an adaptive window never spills past the served range', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(64 * PAGE);
      const seen = [];
      try {
        uffd.register(region);
        uffd.on('pagefault', (e) => {
          seen.push(Number(e.address - region.address) / PAGE);
          uffd.zeropage({ start: e.address, length: PAGE });
        });
        uffd.serve({ start: region.address, length: 20 * PAGE }, PageSource.buffer(pattern(20 * PAGE, 3)));
        const view = new Uint8Array(region.buffer);
        for (let p = 0; p < 20; p++) assert.strictEqual(view[p * PAGE], pattern(20 * PAGE, 3)[p * PAGE]);
        assert.strictEqual(region.residentPages(), 20);
        await region.read(20 * PAGE, PAGE);
        assert.deepStrictEqual(seen, [20]);
      } finally {
        uffd.close();
        region.unmap();
      }
    });

    it('overlapping serve() is refused', () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(8 * PAGE);
      try {
        uffd.serve({ start: region.address, length: 4 * PAGE }, PageSource.zero());
        assert.throws(() => uffd.serve({ start: region.address + BigInt(3 * PAGE), length: 2 * PAGE }, PageSource.zero()),
          { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
        uffd.serve({ start: region.address + BigInt(4 * PAGE), length: 4 * PAGE }, PageSource.zero());
      } finally {
        uffd.close();
        region.unmap();
      }
    });

    it('stop() returns the range to the JavaScript listeners; serving again works', async () => {
      const uffd = Userfaultfd.open();
      const region = Region.map(8 * PAGE);
      const seen = [];
      try {
        const served = uffd.serve(region, PageSource.buffer(pattern(8 * PAGE, 6)), { readahead: false });
        assert.strictEqual(served.start, region.address);
        assert.strictEqual(served.length, 8 * PAGE);
        assert.deepStrictEqual(await region.read(0, PAGE), pattern(8 * PAGE, 6).subarray(0, PAGE));
        served.stop();
        served.stop(); // idempotent
        uffd.on('pagefault', (e) => {
          seen.push(Number(e.address - region.address) / PAGE);
          uffd.copy(e.address, pattern(PAGE, 50));
        });
        assert.deepStrictEqual(await region.read(3 * PAGE, PAGE), pattern(PAGE, 50));
        assert.deepStrictEqual(await region.read(0, PAGE), pattern(8 * PAGE, 6).subarray(0, PAGE)); // still present
        assert.deepStrictEqual(seen, [3]);
        uffd.serve(region, PageSource.zero());
        assert.deepStrictEqual(await region.read(5 * PAGE, PAGE), Buffer.alloc(PAGE));
        assert.deepStrictEqual(seen, [3]);
      } finally {
        uffd.close();
        region.unmap();
      }
    });
  });
});

describeNative('serve: a source viewing a Region registered on the same uffd', () => {
  // The source's Region, unmapped while served, is unmapped for real when the source goes. At
  // close() that came after the reader had stopped but before the fd was closed: registered with
  // EVENT_UNMAP on the same uffd, its munmap(2) waited for a reader that was gone, forever.
  it('close() with that Region unmap()ed while served returns, and the process exits', async () => {
    const r = await runChild(`
      const { Userfaultfd, Region, PageSource } = require('./dist');
      const uffd = Userfaultfd.open({ features: ['EVENT_UNMAP'] });
      const ps = uffd.pageSize;
      const a = Region.map(4 * ps), b = Region.map(4 * ps);
      new Uint8Array(b.buffer).fill(7);
      uffd.serve(a, PageSource.buffer(new Uint8Array(b.buffer)));
      uffd.register(b); // after serve(): its overlap check looks at the ranges registered then
      b.unmap();        // waits for the source
      uffd.close();
      a.unmap();
      console.log('closed');
    `, { timeoutMs: 15000 });
    assert.deepStrictEqual([r.timedOut, r.code, r.signal], [false, 0, null], r.stderr + r.stdout);
    assert.match(r.stdout, /closed/);
  });
});

describeNative('serve: faults already waiting when a uffd is set up (_withReaderHeld)', () => {
  it('are read once every range is served, and answered by the source, with the listener added first', async () => {
    const uffd = Userfaultfd.open();
    const region = Region.map(4 * PAGE);
    try {
      uffd.register(region, { missing: true });
      const expected = pattern(4 * PAGE, 5);
      // The thread pool faults while nothing reads the uffd (an adopted uffd's task does so).
      const read = region.read(2 * PAGE + 10, 100);
      await faultsWaiting(1);
      const seen = [];
      uffd._withReaderHeld(() => {
        uffd.on('pagefault', (f) => seen.push(f));
        // A reader started by the listener would read the fault now, before the serve() below.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        uffd.serve(region, PageSource.buffer(expected), { register: false });
      });
      assert.deepStrictEqual(await read, expected.subarray(2 * PAGE + 10, 2 * PAGE + 110));
      assert.deepStrictEqual(seen, []);
      // Answered on demand by the served range's native path, not by JavaScript claiming it
      // for that range (which a fault read before the serve() gets: demandFaults 0).
      assert.deepStrictEqual([uffd.stats().faults, uffd.stats().demandFaults], [1, 1]);
    } finally {
      uffd.close();
      region.unmap();
    }
  });
});
