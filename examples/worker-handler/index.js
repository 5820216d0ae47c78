// A fault handler in a Worker that owns the userfaultfd: the Worker blocks in uffd.readSync()
// and answers each fault with uffd.copy(), so a fault costs what it costs in C (no hop through
// the main thread's event loop), and the main thread may touch the memory directly: its faults
// are answered by another thread. See docs/fast-handlers.md.
//
//   node examples/worker-handler [--pages N]
//
// test-args: --pages 512
// test-requires: native
// test-expect: ^ok: 512 pages
'use strict';
const { parseArgs } = require('node:util');
const { Worker, isMainThread, workerData } = require('node:worker_threads');
const { Userfaultfd, Region, constants } = require('../..');

const PAGE = constants.pageSize; // the kernel's base page: 4 KiB on x86-64, 4, 16 or 64 KiB on arm64

/** The bytes page `p` holds: what the Worker copies in and the main thread checks. */
function fillPage(view, p) {
  for (let i = 0; i < view.length; i++) view[i] = (p * 31 + i) & 0xff;
}

if (isMainThread) main();
else handle(workerData);

function main() {
  const { values } = parseArgs({ options: { pages: { type: 'string', default: '4096' } } });
  const pages = Number(values.pages);
  const uffd = Userfaultfd.open({ backend: 'native' });
  const region = Region.map(pages * PAGE, { backend: 'native' });
  uffd.register(region);
  // No listener here: this thread never starts a reader, so the Worker's readSync() gets every
  // message. The stop flag is polled by the Worker between two reads.
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(__filename, { workerData: { fd: uffd.fd, base: region.address, stop } });
  worker.once('online', () => {
    // Direct loads from the main thread: each first touch of a page blocks this thread in the
    // kernel until the Worker has copied the page in.
    const memory = new Uint8Array(region.buffer);
    const expected = new Uint8Array(PAGE);
    let bad = 0;
    const t0 = process.hrtime.bigint();
    for (let p = 0; p < pages; p++) if (memory[p * PAGE + 7] !== ((p * 31 + 7) & 0xff)) bad++;
    const ns = Number(process.hrtime.bigint() - t0);
    for (let p = 0; p < pages; p += Math.max(1, pages >> 4)) {
      fillPage(expected, p);
      if (Buffer.compare(memory.subarray(p * PAGE, (p + 1) * PAGE), expected) !== 0) bad++;
    }
    Atomics.store(stop, 0, 1);
    worker.once('exit', () => {
      uffd.close();
      region.unmap();
      if (bad > 0) {
        console.error(`FAIL: ${bad} pages held the wrong bytes`);
        process.exitCode = 1;
        return;
      }
      console.log(`ok: ${pages} pages served by the Worker, ${(ns / pages / 1000).toFixed(1)} µs per fault ` +
        '(the main thread\'s direct loads)');
    });
  });
}

function handle({ fd, base, stop }) {
  // fromFd duplicates the fd: the Worker's copy is its own, closed when it is done.
  const uffd = Userfaultfd.fromFd(fd, { backend: 'native' });
  const src = new Uint8Array(PAGE);
  while (Atomics.load(stop, 0) === 0) {
    // A timeout, so that the stop flag is seen even when no fault comes.
    for (const e of uffd.readSync({ timeoutMs: 50 })) {
      if (e.type !== 'pagefault') continue;
      const page = e.address - (e.address % BigInt(PAGE));
      fillPage(src, Number(page - base) / PAGE);
      // Two threads faulted on the page: the first answer installed it; errorOnExist: false
      // makes the second one wake the rest and return 0, with no exception.
      uffd.copy(page, src, { errorOnExist: false });
    }
  }
  uffd.close();
}
