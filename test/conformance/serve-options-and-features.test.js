// Every FeatureName, every OpenOptions field and every ServeOptions field, each with a row that
// says how a user observes it, and a case per row on both backends: a behaviour check written
// once (both must agree), or, where the simulator cannot model it, its coded refusal
// (ERR_UFFD_UNSUPPORTED, lib/simulator/refusals.ts). The names come from constants.features
// and from lib/base/types.ts, so a feature or option added later without a row fails here. `see`
// names the test file that covers a row in depth; the case here is its one small check.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { Userfaultfd, Region, PageSource, constants, probe, readWorkingSet } = require('../../dist');
const {
  describeBackends, requireFeature, requireBackend, requirePrivileged, skipWithReason, runChild, perTestUffd, pattern, pages, at, delay, PAGE, reserveHugePages,
} = require('../helpers');

const HUGE = 2 * 1024 * 1024;

/** Polls until `cond()` holds (events arrive asynchronously); never asserts a time. */
async function until(cond) {
  for (let i = 0; i < 2000 && !cond(); i++) await delay(5);
  return cond();
}

/** stats() once the reader has counted what it answered (it counts after waking the reader). */
async function settledStats(uffd, bytes) {
  await until(() => uffd.stats().bytes >= bytes);
  return uffd.stats();
}

/** A fault handler that records each fault and answers it with `answer(e)`. */
function recordFaults(uffd, answer) {
  const seen = [];
  uffd.on('pagefault', (e) => { seen.push(e); answer(e); });
  return seen;
}

/** Makes sure `n` huge pages are free on the kernel backend (the simulator needs none): test/helpers.js. */
function hugePages(t, n) {
  if (t.backend === 'native') t.later(reserveHugePages(t.ctx, n, { size: HUGE }));
}

// ---- the rows ---------------------------------------------------------------------------------
// observed: what a user sees; see: the file covering it in depth; check(t): the shared case;
// native(t) / simulator(t): what only that backend adds; simulator: 'refused' where the
// simulator refuses the whole row (the native backend still runs check).

const FEATURES = {
  PAGEFAULT_FLAG_WP: {
    observed: 'a write to a write-protected page is a fault with wp and write set; un-protecting lets it land',
    see: 'faults.test.js',
    async check(t) {
      const u = t.open({ features: ['PAGEFAULT_FLAG_WP'] });
      const r = t.map(1);
      u.register(r, { missing: true, wp: true });
      u.copy(r.address, pattern(PAGE, 1));
      u.writeProtect(r, { protect: true });
      const seen = recordFaults(u, () => u.writeProtect(r, { protect: false }));
      await r.write(10, Buffer.from([7]));
      assert.deepStrictEqual(seen.map((e) => [e.address, e.wp, e.write]), [[r.address, true, true]]);
      assert.strictEqual((await r.read(10, 1))[0], 7);
    },
  },
  EVENT_FORK: {
    observed: "open() takes it; a fork (child_process.spawnSync) with a registered range raises a 'fork' event carrying " +
      "the child's Userfaultfd. The simulator's memory is never inherited by a child: no fork event occurs there",
    see: 'test/native/reader.test.js',
    check(t) {
      if (t.backend === 'native') requirePrivileged(t.ctx, 'EVENT_FORK', 'ptrace');
      const u = t.open({ features: ['EVENT_FORK'] });
      assert.ok(u.features.includes('EVENT_FORK'));
      u.register(t.map(1)); // the child inherits registered ranges only: without one, no event
      t.forks = [];
      u.on('fork', (e) => { t.forks.push(e); t.later(() => e.uffd.close()); });
      spawnSync('true');
    },
    async native(t) {
      assert.ok(await until(() => t.forks.length > 0), 'a fork event');
      assert.ok(t.forks[0].uffd instanceof Userfaultfd);
      assert.strictEqual(t.forks[0].uffd.backend, 'native');
    },
    async simulator(t) {
      await delay(50);
      assert.strictEqual(t.forks.length, 0);
    },
  },
  EVENT_REMAP: {
    observed: "open() takes it; an mremap(2) of a registered range raises 'remap' (no API here moves memory; a process " +
      'that handed over its uffd can): the event reader runs from open(), so readSync() is refused. Nothing moves ' +
      'simulated memory: no remap event occurs there',
    see: 'read-sync.test.js',
    check(t) {
      const u = t.open({ features: ['EVENT_REMAP'] });
      assert.ok(u.features.includes('EVENT_REMAP'));
      t.uffd = u;
    },
    native(t) {
      assert.throws(() => t.uffd.readSync({ timeoutMs: 0 }), { code: 'ERR_UFFD_READER_ACTIVE' });
    },
    async simulator(t) {
      const r = t.map(2);
      t.uffd.register(r);
      const remaps = [];
      t.uffd.on('remap', (e) => remaps.push(e));
      r.dontneed(0, PAGE);
      r.unmap();
      await delay(20);
      assert.deepStrictEqual(remaps, []);
    },
  },
  EVENT_REMOVE: {
    observed: "dontneed() on a registered range raises 'remove' with its start and end",
    see: 'remove-unmap-events.test.js',
    async check(t) {
      const u = t.open({ features: ['EVENT_REMOVE'] });
      const r = t.map(4);
      u.register(r);
      const removes = [];
      u.on('remove', (e) => removes.push(e));
      r.dontneed(PAGE, 2 * PAGE);
      assert.ok(await until(() => removes.length > 0), 'a remove event');
      assert.deepStrictEqual([removes[0].start, removes[0].end], [at(r, 1), at(r, 3)]);
    },
  },
  MISSING_HUGETLBFS: {
    observed: 'a hugetlb region takes missing faults at its huge-page address, answered by a 2 MiB copy',
    see: 'test/native/kernel.test.js (hugetlb regions)',
    async check(t) {
      hugePages(t, 1);
      const u = t.open({ features: ['MISSING_HUGETLBFS'] });
      const r = t.region(HUGE, { hugetlb: true });
      u.register(r);
      const bytes = pattern(HUGE, 3);
      const seen = recordFaults(u, () => u.copy(r.address, bytes));
      assert.deepStrictEqual(await r.read(HUGE - 4, 4), bytes.subarray(HUGE - 4));
      assert.deepStrictEqual(seen.map((e) => e.address), [r.address]);
    },
  },
  MISSING_SHMEM: {
    observed: "a shared (memfd) region takes missing faults; the copy fills the page cache its alias() sees",
    see: 'resolve.test.js',
    async check(t) {
      const u = t.open({ features: ['MISSING_SHMEM'] });
      const r = t.map(2, { shared: true });
      const alias = t.keep(r.alias());
      u.register(r);
      recordFaults(u, (e) => u.copy(e.address, pattern(PAGE, 4)));
      assert.deepStrictEqual(await r.read(PAGE, PAGE), pattern(PAGE, 4));
      assert.deepStrictEqual(await alias.read(PAGE, PAGE), pattern(PAGE, 4));
    },
  },
  EVENT_UNMAP: {
    observed: "unmap() of a registered region raises 'unmap' with the whole range",
    see: 'remove-unmap-events.test.js',
    async check(t) {
      const u = t.open({ features: ['EVENT_UNMAP'] });
      const r = t.map(2);
      u.register(r);
      const unmaps = [];
      u.on('unmap', (e) => unmaps.push(e));
      const [start, end] = [r.address, r.address + BigInt(r.length)];
      r.unmap();
      assert.ok(await until(() => unmaps.length > 0), 'an unmap event');
      assert.deepStrictEqual([unmaps[0].start, unmaps[0].end], [start, end]);
    },
  },
  SIGBUS: {
    observed: "a userfault rejects the access with code 'SIGBUS' instead of raising a 'pagefault' event",
    see: 'features.test.js',
    async check(t) {
      const u = t.open({ features: ['SIGBUS'] });
      const r = t.map(1);
      u.register(r);
      const seen = recordFaults(u, () => undefined);
      await assert.rejects(r.read(0, 1), { code: 'SIGBUS' });
      assert.deepStrictEqual(seen, []);
    },
  },
  THREAD_ID: {
    observed: "fault.tid is the faulting thread's id: a thread-pool thread's, never the JS thread's (the pid)",
    see: 'events.test.js',
    async check(t) {
      const u = t.open({ features: ['THREAD_ID'] });
      const r = t.map(1);
      u.register(r);
      const seen = recordFaults(u, () => u.zeropage(r));
      await r.read(0, 1);
      assert.strictEqual(typeof seen[0].tid, 'number');
      assert.ok(seen[0].tid > 0 && seen[0].tid !== process.pid, `tid ${seen[0].tid}`);
    },
  },
  MINOR_HUGETLBFS: {
    observed: 'a shared hugetlb region whose page cache was filled through alias() takes a minor fault; continue() maps it',
    see: 'test/native/kernel.test.js (hugetlb regions)',
    async check(t) {
      hugePages(t, 1);
      const u = t.open({ features: ['MINOR_HUGETLBFS'] });
      const r = t.region(HUGE, { hugetlb: true, shared: true });
      const alias = t.keep(r.alias());
      await alias.write(100, pattern(16, 6));
      u.register(r, { minor: true });
      const seen = recordFaults(u, () => u.continue({ start: r.address, length: HUGE }));
      assert.deepStrictEqual(await r.read(100, 16), pattern(16, 6));
      assert.deepStrictEqual(seen.map((e) => [e.address, e.minor]), [[r.address, true]]);
    },
  },
  MINOR_SHMEM: {
    observed: 'a shared region whose page cache was filled through alias() takes a minor fault; continue() maps it',
    see: 'events.test.js, ioctls.test.js',
    async check(t) {
      const u = t.open({ features: ['MINOR_SHMEM'] });
      const r = t.map(2, { shared: true });
      const alias = t.keep(r.alias());
      await alias.write(PAGE, pattern(PAGE, 8));
      u.register(r, { minor: true });
      const seen = recordFaults(u, (e) => u.continue({ start: e.address, length: PAGE }));
      assert.deepStrictEqual(await r.read(PAGE, PAGE), pattern(PAGE, 8));
      assert.deepStrictEqual(seen.map((e) => [e.address, e.minor]), [[at(r, 1), true]]);
    },
  },
  EXACT_ADDRESS: {
    observed: "fault.address is the faulting byte's address, not its page's",
    see: 'events.test.js',
    async check(t) {
      const u = t.open({ features: ['EXACT_ADDRESS'] });
      const r = t.map(2);
      u.register(r);
      const seen = recordFaults(u, () => u.zeropage(pages(r, 1, 1)));
      await r.read(PAGE + 123, 1);
      assert.deepStrictEqual(seen.map((e) => e.address), [r.address + BigInt(PAGE + 123)]);
    },
  },
  WP_HUGETLBFS_SHMEM: {
    observed: 'a shared region registered for WP takes write-protect faults as anonymous memory does',
    see: 'faults.test.js',
    async check(t) {
      const u = t.open({ features: ['WP_HUGETLBFS_SHMEM'] });
      const r = t.map(1, { shared: true });
      u.register(r, { missing: true, wp: true });
      u.copy(r.address, pattern(PAGE, 2));
      u.writeProtect(r, { protect: true });
      const seen = recordFaults(u, () => u.writeProtect(r, { protect: false }));
      await r.write(5, Buffer.from([9]));
      assert.deepStrictEqual(seen.map((e) => [e.address, e.wp]), [[r.address, true]]);
      assert.strictEqual((await r.read(5, 1))[0], 9);
    },
  },
  WP_UNPOPULATED: {
    observed: 'a write to a never-touched page of a protected WP range is a write-protect fault',
    see: 'features.test.js',
    async check(t) {
      const u = t.open({ features: ['WP_UNPOPULATED'] });
      const r = t.map(2);
      u.register(r, { wp: true });
      u.writeProtect(r, { protect: true });
      const seen = recordFaults(u, () => u.writeProtect(pages(r, 1, 1), { protect: false }));
      await r.write(PAGE + 3, Buffer.from([9]));
      assert.deepStrictEqual(seen.map((e) => [e.address, e.wp]), [[at(r, 1), true]]);
    },
  },
  POISON: {
    observed: "poison() marks missing pages; an access then rejects with code 'SIGBUS'",
    see: 'ioctls.test.js, resolve.test.js',
    async check(t) {
      const u = t.open({ features: ['POISON'] });
      const r = t.map(1);
      u.register(r);
      assert.strictEqual(u.poison(r), PAGE);
      await assert.rejects(r.read(0, 1), { code: 'SIGBUS' });
    },
  },
  WP_ASYNC: {
    observed: 'writes to an armed WP range raise no fault; dirtyPages() lists the pages written',
    see: 'dirty-snapshot.test.js',
    async check(t) {
      const u = t.open({ features: ['WP_ASYNC', 'WP_UNPOPULATED'] });
      const r = t.map(4);
      u.register(r, { wp: true });
      u.writeProtect(r, { protect: true });
      const seen = recordFaults(u, () => undefined);
      await r.write(2 * PAGE + 1, Buffer.from([1]));
      assert.deepStrictEqual(u.dirtyPages(r), [{ start: at(r, 2), length: PAGE }]);
      assert.deepStrictEqual(seen, []);
    },
  },
  MOVE: {
    observed: 'move() takes a page from an unregistered source into a registered range; the source reads zero after',
    see: 'ioctls.test.js, resolve.test.js',
    async check(t) {
      const u = t.open({ features: ['MOVE'] });
      const dst = t.map(1);
      const src = t.map(1);
      u.register(dst);
      await src.write(0, pattern(PAGE, 8));
      assert.strictEqual(u.move(dst.address, src.address, PAGE), PAGE);
      assert.deepStrictEqual(await dst.read(0, PAGE), pattern(PAGE, 8));
      assert.deepStrictEqual(await src.read(0, PAGE), Buffer.alloc(PAGE));
    },
  },
};

const OPEN_OPTIONS = {
  features: {
    observed: 'uffd.features: the features asked for, plus THREAD_ID (on by default); one row per feature above',
    see: 'remove-unmap-events.test.js',
    check(t) {
      const u = t.open({ features: ['EVENT_REMOVE', 'EVENT_UNMAP'] });
      assert.deepStrictEqual([...u.features].sort(), ['EVENT_REMOVE', 'EVENT_UNMAP', 'THREAD_ID']);
    },
  },
  nonBlocking: {
    observed: 'the fd is always non-blocking: true is accepted (readSync({ timeoutMs: 0 }) returns [] at once), false refused',
    see: 'arguments.test.js',
    check(t) {
      assert.deepStrictEqual(t.open({ nonBlocking: true }).readSync({ timeoutMs: 0 }), []);
      assert.throws(() => t.open({ nonBlocking: false }), { code: 'ERR_INVALID_ARG_TYPE' });
    },
  },
  userModeOnly: {
    observed: 'uffd.userModeOnly is true; a fault of region.read (a user-mode access) still reaches the handler',
    see: 'test/reliability/privileges.test.js',
    async check(t) {
      const u = t.open({ userModeOnly: true });
      assert.strictEqual(u.userModeOnly, true);
      const r = t.map(1);
      u.register(r);
      recordFaults(u, (e) => u.copy(e.address, pattern(PAGE, 5)));
      assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 5));
    },
  },
  backend: {
    observed: "uffd.backend is the backend asked for; a Region of the other backend is refused",
    see: 'arguments.test.js, test/simulator/backend-choice.test.js',
    check(t) {
      const u = t.open();
      assert.strictEqual(u.backend, t.backend);
      const other = t.backend === 'native' ? 'simulator' : 'native';
      requireBackend(t.ctx, other);
      const r = t.keep(Region.map(PAGE, { backend: other }));
      assert.throws(() => u.register(r), { code: 'ERR_INVALID_ARG_TYPE' });
    },
  },
  onSelfFault: {
    observed: "what a touch of region.buffer by the JS thread reads: 'zeropage' (default) zeros, 'source' a " +
      "served range's bytes (both: no hang); 'sigbus' kills the thread (native), refused by the simulator",
    see: 'test/native/reader.test.js (self-fault guard), docs/threads-and-deadlock.md',
    // The JS thread touches registered memory itself: in a child with a deadline, as a guard
    // that failed to answer would leave that thread waiting forever.
    async check(t) {
      const r = await runChild(`
        const { Userfaultfd, Region, PageSource } = require('./dist');
        const backend = '${t.backend}';
        const out = {};
        for (const policy of ['zeropage', 'source']) {
          const uffd = Userfaultfd.open({ backend, onSelfFault: policy });
          uffd.on('error', () => {}); // the kernel backend reports each self-fault (ERR_UFFD_SELF_FAULT)
          uffd.on('pagefault', (e) => uffd.copy(e.address - (e.address % 4096n), Buffer.alloc(4096, 0x55)));
          const registered = Region.map(2 * 4096, { backend });
          uffd.register(registered);
          const served = Region.map(2 * 4096, { backend });
          uffd.serve(served, PageSource.buffer(Buffer.alloc(2 * 4096, 0x33)));
          out[policy] = [new Uint8Array(registered.buffer)[4096 + 5], new Uint8Array(served.buffer)[4096 + 7]];
          uffd.close();
          registered.unmap();
          served.unmap();
        }
        console.log(JSON.stringify(out));`);
      assert.strictEqual(r.timedOut, false, 'no hang');
      assert.strictEqual(r.code, 0, r.stderr);
      // Zeros where nothing serves the page (never the handler's 0x55), the source where a range is served.
      assert.deepStrictEqual(JSON.parse(r.stdout), { zeropage: [0, 0x33], source: [0, 0x33] });
    },
    // The sigbus policy kills the process: run apart, in a child with a deadline.
    async native(t) {
      requireFeature(t.ctx, 'native', 'POISON');
      const r = await runChild(`
        const { Userfaultfd, Region } = require('./dist');
        const uffd = Userfaultfd.open({ backend: 'native', onSelfFault: 'sigbus' });
        const region = Region.map(4096, { backend: 'native' });
        uffd.register(region);
        uffd.on('pagefault', () => {});
        console.log('survived', new Uint8Array(region.buffer)[0]);`);
      assert.strictEqual(r.timedOut, false);
      assert.strictEqual(r.signal, 'SIGBUS', JSON.stringify(r));
    },
    // A touch of region.buffer never faults here: 'sigbus' would read zeros, so it is refused.
    simulator(t) {
      assert.throws(() => t.open({ onSelfFault: 'sigbus' }),
        { code: 'ERR_UFFD_UNSUPPORTED', option: 'onSelfFault', message: /onSelfFault 'sigbus'/ });
      const u = t.open({ onSelfFault: 'source' });
      assert.throws(() => Userfaultfd.fromFd(u.fd, { backend: t.backend, onSelfFault: 'sigbus' }), { code: 'ERR_UFFD_UNSUPPORTED' });
      t.keep(Userfaultfd.fromFd(u.fd, { backend: t.backend, onSelfFault: 'zeropage' }));
    },
  },
  faultTimeoutMs: {
    observed: "a fault nobody answers in time is answered by the fallback (zeros) and reported as ERR_UFFD_FAULT_TIMEOUT",
    see: 'test/reliability (fault timeouts), docs/design.md',
    async check(t) {
      const u = t.open({ faultTimeoutMs: 20 });
      const r = t.map(1);
      u.register(r);
      const errors = [];
      u.on('error', (e) => errors.push(e.code));
      recordFaults(u, () => undefined);
      assert.deepStrictEqual(await r.read(3, 2), Buffer.alloc(2));
      assert.deepStrictEqual(errors, ['ERR_UFFD_FAULT_TIMEOUT']);
    },
  },
};

const SERVE_OPTIONS = {
  readahead: {
    observed: 'stats(): read-ahead off (false) answers one page per fault; a fixed window one fault per window',
    see: 'serve-readahead.test.js',
    async check(t) {
      for (const [readahead, faults] of [[false, 8], [4 * PAGE, 2]]) {
        const u = t.open();
        const r = t.map(8);
        u.serve(r, PageSource.buffer(pattern(8 * PAGE)), { readahead });
        assert.deepStrictEqual(await r.read(0, 8 * PAGE), pattern(8 * PAGE));
        assert.strictEqual((await settledStats(u, 8 * PAGE)).faults, faults, `readahead ${readahead}`);
      }
    },
  },
  removed: {
    observed: "with EVENT_REMOVE, a page dropped by dontneed() reads zeros under removed: 'zero', the source again by default",
    see: 'serve-removed.test.js',
    async check(t) {
      for (const removed of ['zero', 'source']) {
        const u = t.open({ features: ['EVENT_REMOVE'] });
        const r = t.map(4);
        const src = pattern(4 * PAGE, 17);
        u.serve(r, PageSource.buffer(src), { removed });
        assert.deepStrictEqual(await r.read(0, 4 * PAGE), src);
        r.dontneed(PAGE, PAGE);
        const expected = removed === 'zero' ? Buffer.alloc(PAGE) : src.subarray(PAGE, 2 * PAGE);
        assert.deepStrictEqual(await r.read(PAGE, PAGE), expected, removed);
      }
    },
  },
  pageSize: {
    observed: 'pageSize 2 MiB answers a fault with a whole 2 MiB page: one fault, 2 MiB copied',
    see: 'test/native/firecracker.test.js',
    async check(t) {
      const u = t.open();
      const r = t.map((2 * HUGE) / PAGE);
      const start = r.address + ((BigInt(HUGE) - (r.address % BigInt(HUGE))) % BigInt(HUGE));
      const src = pattern(HUGE, 23);
      u.serve({ start, length: HUGE }, PageSource.buffer(src), { pageSize: HUGE, readahead: false });
      const offset = Number(start - r.address);
      assert.deepStrictEqual(await r.read(offset + 5, 1), src.subarray(5, 6));
      assert.deepStrictEqual(await r.read(offset + HUGE - 1, 1), src.subarray(HUGE - 1));
      const s = await settledStats(u, HUGE);
      assert.deepStrictEqual([s.faults, s.bytes], [1, HUGE]);
    },
  },
  record: {
    observed: 'the first touches, in order, are written to the file when serving stops',
    see: 'working-set.test.js',
    async check(t) {
      const file = t.file('record.uffdws');
      const u = t.open();
      const r = t.map(8);
      const served = u.serve(r, PageSource.buffer(pattern(8 * PAGE)), { record: file });
      await r.read(5 * PAGE, 1);
      await r.write(PAGE, Buffer.from([1]));
      served.stop();
      assert.deepStrictEqual(readWorkingSet(file).runs.map((x) => [x.first, x.count, x.write]), [[5, 1, false], [1, 1, true]]);
    },
  },
  prefetch: {
    observed: "the saved set's pages are installed without demand faults (stats().prefetched)",
    see: 'working-set.test.js',
    async check(t) {
      const file = await recorded(t, 'prefetch.uffdws', [5, 1]);
      const u = t.open();
      const r = t.map(8);
      u.serve(r, PageSource.buffer(pattern(8 * PAGE)), { prefetch: file });
      assert.ok(await until(() => u.stats().prefetched >= 2), 'the set is prefetched');
      assert.deepStrictEqual(await r.read(PAGE, PAGE), pattern(8 * PAGE).subarray(PAGE, 2 * PAGE));
      assert.strictEqual(u.stats().demandFaults, 0);
    },
  },
  workingSet: {
    observed: 'with record and prefetch, maxMiB caps the refined set, keeping its first pages in order',
    see: 'working-set.test.js, working-set-format.test.js',
    async check(t) {
      const file = await recorded(t, 'refine.uffdws', [5, 1, 3]);
      const u = t.open();
      const r = t.map(8);
      const served = u.serve(r, PageSource.buffer(pattern(8 * PAGE)), {
        record: file, prefetch: file, workingSet: { maxMiB: (2 * PAGE) / (1024 * 1024) },
      });
      assert.ok(await until(() => u.stats().prefetched >= 3), 'the set is prefetched');
      served.stop();
      assert.deepStrictEqual(readWorkingSet(file).runs.map((x) => [x.first, x.count]), [[5, 1], [1, 1]]);
    },
  },
};

/** A working set recorded by touching `order` (pages of an 8-page range, read in that order). */
async function recorded(t, name, order) {
  const file = t.file(name);
  const u = t.open();
  const r = t.map(8);
  const served = u.serve(r, PageSource.buffer(pattern(8 * PAGE)), { record: file });
  for (const p of order) await r.read(p * PAGE, 1);
  served.stop();
  return file;
}

// ---- the tables are complete ------------------------------------------------------------------

/** The member names of `name`, an interface of lib/base/types.ts (null where the source is not here). */
function interfaceFields(name) {
  let ts;
  try {
    ts = require('typescript');
  } catch {
    return null;
  }
  const file = path.join(__dirname, '../../lib/base/types.ts');
  if (!fs.existsSync(file)) return null;
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const decl = source.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === name);
  assert.ok(decl, `interface ${name} in lib/base/types.ts`);
  return decl.members.map((m) => m.name.getText(source));
}

describe('serve options and features: every name has a row', () => {
  it('every key of constants.features (the kernel UFFD_FEATURE_* list) has a row, and nothing else', () => {
    assert.deepStrictEqual(Object.keys(FEATURES).sort(), Object.keys(constants.features).sort());
  });

  for (const [name, table] of [['OpenOptions', OPEN_OPTIONS], ['ServeOptions', SERVE_OPTIONS]]) {
    it(`every field of ${name} (lib/base/types.ts) has a row, and nothing else`, function () {
      const fields = interfaceFields(name);
      if (fields === null) skipWithReason(this, 'lib/base/types.ts and the typescript package are not here (an installed package)');
      assert.deepStrictEqual(Object.keys(table).sort(), fields.sort());
    });
  }

  it("the simulator's probe() offers exactly the features whose row it does not refuse", () => {
    const modelled = Object.keys(FEATURES).filter((n) => FEATURES[n].simulator !== 'refused');
    assert.deepStrictEqual([...probe({ backend: 'simulator' }).features].sort(), modelled.sort());
  });
});

// ---- one case per row, on both backends ------------------------------------------------------

describeBackends('serve options and features', (backend) => {
  let cleanups = [];
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-rows-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    for (const fn of cleanups.splice(0).reverse()) fn();
  });

  /** What a row's check gets: its backend, and opens, maps and files undone after the case. */
  function context(ctx) {
    const t = {
      backend,
      ctx,
      later: (fn) => cleanups.push(fn),
      keep: (x) => { t.later(() => (x instanceof Region ? x.unmap() : x.close())); return x; },
      open: (options = {}) => t.keep(Userfaultfd.open({ backend, ...options })),
      region: (length, options = {}) => t.keep(Region.map(length, { backend, ...options })),
      map: (n, options = {}) => t.region(n * PAGE, options),
      file: (name) => path.join(dir, `${backend}-${name}`),
    };
    return t;
  }

  function rows(kind, table) {
    for (const [name, row] of Object.entries(table)) {
      const refused = backend === 'simulator' && row.simulator === 'refused';
      const title = refused ? `${kind} ${name}: refused by the simulator with ERR_UFFD_UNSUPPORTED, and not offered`
        : `${kind} ${name}: ${row.observed} (in depth: ${row.see})`;
      it(title, async function () {
        if (refused) return refusedFeature(name);
        if (kind === 'feature') requireFeature(this, backend, name);
        const t = context(this);
        await row.check(t);
        if (typeof row[backend] === 'function') await row[backend](t);
      });
    }
  }

  function refusedFeature(name) {
    assert.ok(!probe({ backend }).features.includes(name), `probe() does not offer ${name}`);
    assert.throws(() => Userfaultfd.open({ backend, features: ['EVENT_REMOVE', name] }),
      { code: 'ERR_UFFD_UNSUPPORTED', feature: name, backend: 'simulator', message: new RegExp(name) });
  }

  rows('feature', FEATURES);
  rows('open option', OPEN_OPTIONS);
  rows('serve option', SERVE_OPTIONS);
});

// ---- policies the simulator copies from the native reader thread ------------------------------
// Each is pinned once, in a shared case both backends must pass: adaptive read-ahead here (its
// cap and its tracked readers: native ServedRanges::kMaxWindow and kStreams, the simulator's
// MAX_WINDOW and STREAMS), removed spans in serve-removed.test.js, the self-fault answer in the
// onSelfFault row above (the policy values themselves come from the native constants table).

describeBackends('serve: the adaptive read-ahead policy', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  /** Reads `pages` pages in order, 16 at a time: one large memcpy may touch pages out of order. */
  async function readInOrder(r, pages) {
    for (let p = 0; p < pages; p += 16) await r.read(p * PAGE, Math.min(16, pages - p) * PAGE);
  }

  it('a sequential reader doubles its window up to 4 MiB, then stays there: 4095 pages in 13 faults', async () => {
    const n = 4095; // 1 + 2 + ... + 1024 pages (11 faults), then 1024 + 1024 (capped; 2048 would take 1)
    const r = map(n);
    uffd.serve(r, PageSource.zero());
    await readInOrder(r, n);
    const s = await settledStats(uffd, n * PAGE);
    assert.deepStrictEqual([s.faults, s.bytes], [13, n * PAGE]);
  });

  for (const readers of [4, 5]) {
    const outcome = readers === 4 ? 'each keeps its window: the second touches are 2-page windows'
      : 'one too many: each evicts the least recently used, every window stays 1 page';
    it(`${readers} interleaved sequential readers: ${outcome}`, async () => {
      const r = map(readers * 64);
      uffd.serve(r, PageSource.zero());
      for (let step = 0; step < 2; step++) {
        for (let i = 0; i < readers; i++) await r.read((i * 64 + step) * PAGE, 1);
      }
      const bytes = readers === 4 ? readers * 3 * PAGE : readers * 2 * PAGE;
      const s = await settledStats(uffd, bytes);
      assert.deepStrictEqual([s.faults, s.bytes], [2 * readers, bytes]);
    });
  }
});
