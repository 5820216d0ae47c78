// uffd.readSync() on the kernel: it blocks, times out, and lets a Worker that blocks in it be
// terminated. Each case runs in a child with a deadline: a regression here hangs, not fails.
const assert = require('assert');
const path = require('path');
const { describeNative, runChild, scaled, PAGE } = require('../helpers');

const DIST = JSON.stringify(path.join(__dirname, '..', '..', 'dist'));

/** Runs `source` in a child; asserts a clean exit and returns its stdout. */
async function child(source, timeoutMs = 20000) {
  const r = await runChild(`const { Userfaultfd, Region, constants } = require(${DIST}); const PAGE = constants.pageSize;\n${source}`, { timeoutMs });
  assert.ok(!r.timedOut, `the child hung (killed after ${scaled(timeoutMs)} ms); stderr: ${r.stderr}`);
  assert.strictEqual(r.signal, null, r.stderr);
  assert.strictEqual(r.code, 0, r.stderr);
  return r.stdout;
}

describeNative('readSync blocking', function () {
  this.timeout(scaled(30000));

  it('blocks until a fault raised by another thread is queued, and returns it', async () => {
    const out = await child(`
      const uffd = Userfaultfd.open();
      const region = Region.map(PAGE);
      uffd.register(region);
      const reading = region.read(0, PAGE);       // a pool thread faults, soon
      const events = uffd.readSync();             // no timeout: waits for it
      uffd.copy(events[0].address, Buffer.alloc(PAGE, 0x42));
      reading.then((b) => {
        console.log(events.length, events[0].type, b[0]);
        uffd.close();
      });
    `);
    assert.strictEqual(out.trim(), '1 pagefault 66');
  });

  it('returns [] when timeoutMs passes with nothing queued', async () => {
    const out = await child(`
      const uffd = Userfaultfd.open();
      const region = Region.map(PAGE);
      uffd.register(region);
      console.log(JSON.stringify(uffd.readSync({ timeoutMs: 30 })), JSON.stringify(uffd.readSync({ timeoutMs: 250 })));
      uffd.close();
    `);
    assert.strictEqual(out.trim(), '[] []');
  });

  it('a Worker that owns the uffd answers the main thread direct loads', async () => {
    const out = await child(`
      const { Worker } = require('worker_threads');
      const uffd = Userfaultfd.open();
      const pages = 64;
      const region = Region.map(pages * PAGE);
      uffd.register(region);
      const stop = new Int32Array(new SharedArrayBuffer(4));
      const w = new Worker(\`
        const { workerData: { fd, stop } } = require('worker_threads');
        const { Userfaultfd } = require(${DIST.replace(/\\/g, '\\\\')});
        const u = Userfaultfd.fromFd(fd);
        const src = new Uint8Array(${PAGE});
        while (Atomics.load(stop, 0) === 0) {
          for (const e of u.readSync({ timeoutMs: 20 })) {
            src.fill(Number((e.address / ${PAGE}n) & 0xffn));
            u.copy(e.address, src);
          }
        }
        u.close();
      \`, { eval: true, workerData: { fd: uffd.fd, stop } });
      w.once('online', () => {
        const m = new Uint8Array(region.buffer);
        let bad = 0;
        for (let p = 0; p < pages; p++) if (m[p * PAGE + 100] !== Number(((region.address + BigInt(p * PAGE)) / BigInt(PAGE)) & 0xffn)) bad++;
        Atomics.store(stop, 0, 1);
        w.once('exit', (code) => { console.log('bad', bad, 'exit', code); uffd.close(); });
      });
    `);
    assert.strictEqual(out.trim(), 'bad 0 exit 0');
  });

  it('a Worker blocked in readSync() without a timeout can be terminated, and the process exits', async () => {
    const out = await child(`
      const { Worker } = require('worker_threads');
      const uffd = Userfaultfd.open();
      const region = Region.map(PAGE);
      uffd.register(region);
      const w = new Worker(\`
        const { workerData: { fd }, parentPort } = require('worker_threads');
        const { Userfaultfd } = require(${DIST.replace(/\\/g, '\\\\')});
        const u = Userfaultfd.fromFd(fd);
        parentPort.postMessage('reading');
        u.readSync();
        parentPort.postMessage('returned');
      \`, { eval: true, workerData: { fd: uffd.fd } });
      w.on('message', (m) => {
        if (m !== 'reading') return; // readSync may return [] once the Worker is stopping
        setTimeout(() => w.terminate().then((code) => { console.log('terminated', code); uffd.close(); }), 50);
      });
    `);
    assert.strictEqual(out.trim(), 'terminated 1');
  });

  it('process.exit() while a Worker blocks in readSync() exits', async () => {
    const out = await child(`
      const { Worker } = require('worker_threads');
      const uffd = Userfaultfd.open();
      uffd.register(Region.map(PAGE));
      const w = new Worker(\`
        const { workerData: { fd }, parentPort } = require('worker_threads');
        const u = require(${DIST.replace(/\\/g, '\\\\')}).Userfaultfd.fromFd(fd);
        parentPort.postMessage('reading');
        u.readSync();
      \`, { eval: true, workerData: { fd: uffd.fd } });
      w.on('message', () => setTimeout(() => { console.log('exiting'); process.exit(0); }, 50));
    `);
    assert.strictEqual(out.trim(), 'exiting');
  });
  it("a Worker's readSync gets the faults of a uffd opened with EVENT_REMOVE (whose own reader runs from open)", async () => {
    // The main thread's uffd reads from open() so that REMOVE never blocks madvise; it has no
    // consumer, so it steps aside for the Worker that readSync()s a duplicate: faults raised
    // before and after the Worker starts reach the Worker, and so do the REMOVE events.
    const out = await child(`
      const { Worker } = require('worker_threads');
      const uffd = Userfaultfd.open({ features: ['EVENT_REMOVE'] });
      const region = Region.map(4 * PAGE);
      uffd.register(region);
      const early = region.read(0, PAGE);
      setTimeout(() => {
        const w = new Worker(\`
          const { workerData: { fd }, parentPort } = require('worker_threads');
          const { Userfaultfd } = require(${DIST.replace(/\\/g, '\\\\')});
          const u = Userfaultfd.fromFd(fd);
          const seen = [];
          for (let faults = 0, removes = 0; faults < 3 || removes < 1; ) {
            const events = u.readSync({ timeoutMs: 5000 });
            if (events.length === 0) break;
            for (const e of events) {
              seen.push(e.type);
              if (e.type === 'remove') removes++;
              if (e.type !== 'pagefault') continue;
              faults++;
              u.copy(e.address - (e.address % ${PAGE}n), Buffer.alloc(${PAGE}, 0x40 + faults));
            }
          }
          u.close();
          parentPort.postMessage(seen.join(','));
        \`, { eval: true, workerData: { fd: uffd.fd } });
        let seen;
        w.on('message', (m) => { seen = m; });
        (async () => {
          const a = (await early)[0];
          const b = (await region.read(PAGE, PAGE))[0];
          const c = (await region.read(2 * PAGE, PAGE))[0];
          region.dontneed(PAGE, PAGE);
          w.on('exit', () => {
            // The Worker closed its duplicate: the main uffd reads REMOVE again, so this returns.
            region.dontneed(2 * PAGE, PAGE);
            console.log(a, b, c, seen);
            uffd.close();
          });
        })();
      }, 100);
    `);
    assert.strictEqual(out.trim(), '65 66 67 pagefault,pagefault,pagefault,remove');
  });
});
