// The API fuzzer, run in a child process by fuzz.test.js (or by hand:
//   FUZZ_SEED=1234 FUZZ_CALLS=100000 node test/reliability/fuzz-child.js).
// A seeded run of random calls over the whole public API with random (mostly wrong) arguments.
// It must never crash, and every failure must be a TypeError (ERR_INVALID_ARG_TYPE), a
// RangeError (ERR_OUT_OF_RANGE) or a UffdError (an E* code). On any other outcome it prints the
// seed and exits 1; on success it prints one JSON line of counters.
//
// It must not hang by construction, so it keeps to these rules:
// - registered memory is touched only by region.read/write (thread-pool threads: a pending
//   promise is fine, closing the uffd releases it), except the memory of the "guarded" uffd G,
//   which always has a listener (its reader runs, THREAD_ID is on) and onSelfFault 'zeropage':
//   the main thread reads and writes G's region through region.buffer, and the self-fault guard
//   answers. G is never poisoned, unregistered, closed or adopted (fromFd) before the end, and
//   its region is never protected or unmapped;
// - no poison on memory the main thread touches (SIGBUS kills by design), from any uffd: the
//   kernel lets every uffd of a process copy, zero or poison any range registered by another;
// - a uffd with a non-cooperative event feature (REMOVE, UNMAP, REMAP, FORK) always has a
//   listener, since madvise/munmap block until the event is read;
// - a range registered by a uffd with the SIGBUS feature is treated as poisoned;
// - raw ranges given to a uffd lie inside one live region of the uffd's own backend (the
//   simulator's fake addresses may be real memory of this process), never past its end nor in
//   freed address space: the neighbouring mapping may be V8's heap, and a V8 thread stopped on
//   a fault nobody answers stops the main thread too (at the next GC);
// - copy and PageSource.buffer sources are plain buffers, never views of registered memory.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource, UffdError, probe, FEATURE_NAMES, constants } = require('../../dist');

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const CALLS = Number(process.env.FUZZ_CALLS || 100000);
const PAGE = constants.pageSize;
const TRACE = process.env.FUZZ_TRACE === '1';

// ---- seeded randomness ------------------------------------------------------------------------
const { int, pick, chance } = require('./seeded-random').seededRandom(SEED);

// ---- failure --------------------------------------------------------------------------------
let current = 'start';
function fail(what, err) {
  process.stdout.write(`FUZZ FAILURE seed=${SEED} at call ${calls} (${current}): ${what}\n`);
  if (err) process.stdout.write(`${err && err.stack ? err.stack : String(err)}\n`);
  // Not process.exit(): libuv joins its thread pool at exit, and a pool thread may be waiting
  // on a fault that this failed run will never answer.
  process.kill(process.pid, 'SIGKILL');
}
process.on('uncaughtException', (e) => fail('uncaught exception', e));
process.on('unhandledRejection', (e) => fail('unhandled rejection', e));

const counts = { calls: 0, ok: 0, TypeError: 0, RangeError: 0, UffdError: 0, codes: {}, errorEvents: {},
  faults: 0, guardedAccesses: 0, handlerCalls: 0, promises: 0 };

function checkError(e) {
  if (e instanceof UffdError) {
    // SIGSEGV/SIGBUS: the simulator's stand-in for a signal the kernel backend would die of
    // (the native runs here never reach one, by construction).
    if (typeof e.code !== 'string' || !/^(E[A-Z0-9]+|SIGSEGV|SIGBUS)$/.test(e.code) || typeof e.errno !== 'number' ||
        typeof e.syscall !== 'string') fail('malformed UffdError', e);
    counts.UffdError++;
    counts.codes[e.code] = (counts.codes[e.code] || 0) + 1;
    return;
  }
  // The package's own refusals of a state, not an argument (ERR_UFFD_SERVE_SIGBUS,
  // ERR_UFFD_SOURCE_OVERLAP, ...): coded, documented, and never a crash.
  if (e instanceof Error && typeof e.code === 'string' && e.code.startsWith('ERR_UFFD_')) {
    counts.codes[e.code] = (counts.codes[e.code] || 0) + 1;
    return;
  }
  if (e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE') { counts.TypeError++; return; }
  if (e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE') { counts.RangeError++; return; }
  fail('an error that is not TypeError/RangeError/UffdError with its code', e);
}

// ---- the world ------------------------------------------------------------------------------
const simAvailable = (() => { try { return probe({ backend: 'simulator' }).available; } catch { return false; } })();
const BACKENDS = simAvailable ? ['native', 'native', 'simulator'] : ['native'];
const NONCOOP = ['EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE', 'EVENT_UNMAP'];
const uffds = [];      // every uffd made (closed ones stay: closed handles are fuzz input too)
const regions = [];    // every region made
const served = [];     // serve() handles
const pending = new Set();
let calls = 0;

const tmpFile = path.join(os.tmpdir(), `uffd-fuzz-${process.pid}.bin`);
fs.writeFileSync(tmpFile, Buffer.alloc(5 * PAGE + 123, 7));
const tmpFd = fs.openSync(tmpFile, 'r');

const detached = () => { const ab = new ArrayBuffer(PAGE); structuredClone(ab, { transfer: [ab] }); return ab; };
const detachedView = () => { const ab = new ArrayBuffer(PAGE); const v = new Uint8Array(ab); structuredClone(ab, { transfer: [ab] }); return v; };

if (TRACE) {
  const show = (a) => { try { return typeof a === 'bigint' ? `0x${a.toString(16)}n` : a instanceof Region ? `Region(0x${a.address.toString(16)}+${a.length}${a.guarded ? ' G' : ''})` : a instanceof Userfaultfd ? `uffd` : a && typeof a === 'object' && !ArrayBuffer.isView(a) && !(a instanceof ArrayBuffer) ? `{${Object.entries(a).map(([k, v]) => `${k}:${show(v)}`).join(',')}}` : typeof a === 'symbol' ? 'sym' : ArrayBuffer.isView(a) ? `view(${a.byteLength})` : String(a); } catch { return '?'; } };
  for (const cls of [Userfaultfd.prototype, Region.prototype]) {
    for (const m of ['register', 'unregister', 'copy', 'zeropage', 'wake', 'writeProtect', 'continue', 'poison', 'move', 'serve', 'dontneed', 'protect', 'unmap', 'close']) {
      const orig = cls[m];
      if (!orig) continue;
      cls[m] = function (...args) { fs.writeSync(2, `  ${this === G ? 'G.' : this.guarded ? 'GR.' : ''}${m}(${args.map(show).join(', ')})\n`); return orig.apply(this, args); };
    }
  }
}

// The guarded uffd and its region (see the rules above).
const G = Userfaultfd.open({ backend: 'native', faultTimeoutMs: 5 + int(30) });
const GR = Region.map(16 * PAGE, { backend: 'native' });
G.register(GR, { missing: true, wp: true });
uffds.push(G);
regions.push(GR);
G.guarded = true;
GR.guarded = true;
listen(G);

function liveUffds(allowG) { return uffds.filter((u) => !u.closed && (allowG || u !== G)); }
function liveRegions(backend) { return regions.filter((r) => !r.unmapped && (!backend || r.backend === backend)); }

// ---- values ---------------------------------------------------------------------------------
const JUNK = [undefined, null, true, false, 0, -0, 1, -1, 0.5, -PAGE, PAGE - 1, PAGE, PAGE + 1, 8192, 65536,
  2 ** 31, 2 ** 32, 2 ** 47, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e308, -1e308, NaN, Infinity, -Infinity,
  0n, 1n, -1n, BigInt(PAGE), BigInt(PAGE + 1), 2n ** 63n, 2n ** 64n - BigInt(PAGE), 2n ** 64n, -(2n ** 64n), '', String(PAGE), 'abc', '\0',
  Symbol('s'), [], [PAGE], {}, { start: 0, length: 0 }, { start: -1, length: PAGE }, { length: PAGE },
  { start: BigInt(PAGE) }, () => 1, new Date(0), /x/, new Map(), Object.create(null), Buffer.alloc(0),
  new Uint16Array(2048), new Float64Array(512), new DataView(new ArrayBuffer(PAGE))];

function junk() {
  const r = int(12);
  if (r === 0) return detached();
  if (r === 1) return detachedView();
  if (r === 2 && uffds.length) return pick(uffds);
  if (r === 3 && regions.length) return pick(regions);
  if (r === 4) return PageSource.zero();
  return pick(JUNK);
}

/** An address: mostly inside a live region (bigint or number, aligned or not), else junk. */
function address(backend = 'native') {
  const live = liveRegions(backend);
  if (live.length && chance(0.75)) {
    const r = pick(live);
    let off = int(r.length / PAGE) * PAGE;
    if (chance(0.1)) off += pick([1, 7, PAGE / 2, PAGE - 1]);
    const a = r.address + BigInt(off);
    return chance(0.5) ? a : Number(a);
  }
  return pick([0, PAGE, 0n, BigInt(PAGE), 2n ** 64n - BigInt(PAGE), 2n ** 63n, 2 ** 53, -PAGE, 1.5, 'x', null, undefined]);
}

function length() {
  if (chance(0.8)) return (1 + int(pick([1, 4, 16, 20]))) * PAGE;
  return pick([0, -PAGE, 1, PAGE - 1, PAGE + 1, 1.5, 2 ** 53, 2 ** 64, NaN, Infinity, String(PAGE), BigInt(PAGE), null, undefined]);
}

/**
 * A range: a Region, junk, or { start, length } inside ONE live region. A valid range never
 * reaches past its region: the next mapping may be V8's heap, and registering it (or moving
 * pages out of it) would stop V8's own threads on faults nobody answers.
 */
function range(backend = 'native') {
  const r = int(10);
  const live = liveRegions(backend);
  if (r < 3 && regions.length) return pick(regions);        // a Region (possibly unmapped)
  if (r < 9 && live.length) {
    const x = inRegion(pick(live));
    if (r === 8) x.extra = 1;
    return x;
  }
  return junk();
}

function inRegion(reg) {
  const pages = reg.length / PAGE;
  const k = int(pages);
  let start = reg.address + BigInt(k * PAGE);
  let len = (1 + int(pages - k)) * PAGE;
  if (chance(0.1)) start += BigInt(pick([1, 7, 2048]));         // misaligned: refused before any syscall
  if (chance(0.1)) len = pick([0, -PAGE, 1, PAGE - 1, PAGE + 1, 1.5, 2 ** 53, 2 ** 64, NaN, Infinity, String(PAGE), BigInt(PAGE), null, undefined]);
  return { start: chance(0.5) ? start : Number(start), length: len };
}

function bytes() {
  const r = int(8);
  if (r < 4) return Buffer.alloc((1 + int(4)) * PAGE, int(256));
  if (r === 4) return new Uint8Array(new ArrayBuffer((1 + int(2)) * PAGE));
  if (r === 5) return chance(0.5) ? new ArrayBuffer(PAGE) : chance(0.5) ? new SharedArrayBuffer(PAGE) : new Uint8Array(new SharedArrayBuffer(3 * PAGE), PAGE, PAGE);
  if (r === 6) return Buffer.alloc(pick([0, 1, PAGE - 1, PAGE + 1]));
  if (chance(0.5) && !GR.unmapped) return new Uint8Array(GR.buffer, int(8) * PAGE, PAGE); // guarded memory
  return junk();
}

function flag() { return chance(0.8) ? chance(0.5) : junk(); }
function opts(names) {
  if (chance(0.1)) return junk();
  const o = {};
  for (const n of names) if (chance(0.4)) o[n] = flag();
  return o;
}

function openOptions() {
  if (chance(0.05)) return junk();
  const o = {};
  if (chance(0.5)) {
    o.features = chance(0.9) ? FEATURE_NAMES.filter(() => chance(0.15)) : pick([['NOPE'], 'EVENT_FORK', [1], junk()]);
  }
  if (chance(0.2)) o.userModeOnly = flag();
  if (chance(0.3)) o.onSelfFault = chance(0.8) ? pick(['zeropage', 'sigbus', 'source']) : junk();
  if (chance(0.3)) o.faultTimeoutMs = chance(0.7) ? 1 + int(50) : junk();
  if (chance(0.9)) o.backend = chance(0.9) ? pick(BACKENDS) : pick(['auto', 'nope', junk()]);
  return o;
}

// ---- handlers -------------------------------------------------------------------------------
const INJECTED = 'fuzz: injected handler failure';
let depth = 0;

function onError(u) {
  if (u.fuzzErrorListener) return;
  u.fuzzErrorListener = true;
  u.on('error', (e) => {
    // 'error' events: our injected throws, and the package's own ERR_UFFD_* / UffdError reports.
    const code = e && e.message === INJECTED ? 'INJECTED' : e && e.code;
    if (!(code === 'INJECTED' || e instanceof UffdError || (typeof code === 'string' && code.startsWith('ERR_UFFD_')))) {
      fail("unexpected 'error' event", e);
    }
    counts.errorEvents[code] = (counts.errorEvents[code] || 0) + 1;
    if (process.env.FUZZ_SHOW_ERRORS && e instanceof UffdError) fs.writeSync(2, `error event: ${e.message}\n`);
  });
}

function listen(u) {
  onError(u);
  u.on('pagefault', (e) => {
    counts.faults++;
    if (typeof e.address !== 'bigint' || typeof e.write !== 'boolean') fail('malformed pagefault event', new Error(String(e)));
    const r = int(10);
    if (depth < 2) {
      depth++;
      try { for (let i = int(3); i > 0; i--) { counts.handlerCalls++; step(); } } finally { depth--; }
    }
    if (u.closed) return;
    const page = e.address - (e.address % BigInt(PAGE));
    if (r === 0) throw new Error(INJECTED);
    if (r === 1) return; // never answered: the faultTimeoutMs fallback or close() releases it
    try {
      if (r < 6) u.copy(page, Buffer.alloc(PAGE, int(256)));
      else if (r < 8) u.zeropage({ start: page, length: PAGE });
      else u.wake({ start: page, length: PAGE });
    } catch (err) {
      checkError(err);
      if (err.code === 'EEXIST') u.wake({ start: page, length: PAGE });
    }
  });
  for (const t of ['remove', 'unmap', 'remap']) u.on(t, () => {});
  u.on('fork', (e) => { uffds.push(e.uffd); listen(e.uffd); });
}

/** Marks the region that `r` falls in as poisoned, unless it has accesses in flight. */
function taint(r) {
  let hit = [];
  if (r instanceof Region) hit = [r];
  else {
    let a, n;
    try { a = BigInt(r.start); n = BigInt(r.length); } catch { return true; }
    if (n < 0n) return true;
    // The range may run on into the next mapping: every region it overlaps counts.
    hit = regions.filter((x) => a < x.address + BigInt(x.length) && a + n > x.address);
  }
  // Any uffd of the process may poison any registered range (the kernel checks only that the
  // range is registered, not by whom): G's region is never a target.
  if (hit.some((x) => x.inflight > 0 || x.guarded)) return false;
  for (const x of hit) x.tainted = true;
  return true;
}

// With the SIGBUS feature, a fault in a registered range is SIGBUS instead of a message: such a
// range is as deadly to touch as a poisoned one.
function sigbusFeature(u) { return u.features.includes('SIGBUS'); }

function hasNoncoop(u) { return u.features.some((f) => NONCOOP.includes(f)); }

function track(region, p) {
  if (!(p instanceof Promise)) fail('expected a promise', new Error(typeof p));
  counts.promises++;
  if (region) region.inflight = (region.inflight || 0) + 1;
  const q = p.then(() => { counts.ok++; }, checkError).finally(() => {
    pending.delete(q);
    if (region) region.inflight--;
  });
  pending.add(q);
}

// ---- the operations -------------------------------------------------------------------------
function anyUffd() {
  // Mostly a live uffd that may be G (restricted ops check), sometimes a closed one.
  if (chance(0.1) && uffds.length) return pick(uffds);
  const live = liveUffds(true);
  return live.length ? pick(live) : G;
}
function notG() {
  const live = liveUffds(false);
  if (chance(0.15) && uffds.length) { const u = pick(uffds); if (u !== G) return u; }
  return live.length ? pick(live) : null;
}
function anyRegion(allowGuarded, allowTainted = true) {
  const list = regions.filter((r) => (allowGuarded || !r.guarded) && (allowTainted || !r.tainted));
  if (!list.length) return null;
  const live = list.filter((r) => !r.unmapped);
  return chance(0.9) && live.length ? pick(live) : pick(list);
}

const OPS = [
  ['open', 6, () => {
    if (liveUffds(false).length >= 6) { const u = pick(liveUffds(false)); u.close(); return; }
    const u = Userfaultfd.open(openOptions());
    uffds.push(u);
    onError(u);
    if (hasNoncoop(u) || chance(0.5)) listen(u);
  }],
  ['fromFd', 2, () => {
    const cands = liveUffds(false).filter((u) => u.fd >= 0 && u.fd !== G.fd);
    let fd = chance(0.7) && cands.length ? pick(cands).fd : pick([0, 1, 2, tmpFd, 99999, -1, 1.5, 2 ** 40, 'x', null]);
    if (fd === G.fd) fd = 0;
    if (liveUffds(false).length >= 6) return;
    const u = Userfaultfd.fromFd(fd, chance(0.3) ? openOptions() : undefined);
    uffds.push(u);
    listen(u); // an adopted fd may carry non-cooperative features
  }],
  ['register', 8, () => {
    const u = anyUffd();
    const r = range(u.backend);
    if (sigbusFeature(u) && !taint(r)) return;
    u.register(r, opts(['missing', 'wp', 'minor']));
  }],
  ['unregister', 4, () => { const u = notG(); if (u) u.unregister(range(u.backend)); }],
  ['copy', 10, () => { const u = anyUffd(); u.copy(chance(0.3) ? range(u.backend) : address(u.backend), bytes(), opts(['dontWake', 'wp'])); }],
  ['zeropage', 6, () => { const u = anyUffd(); u.zeropage(range(u.backend), opts(['dontWake'])); }],
  ['wake', 5, () => { const u = anyUffd(); u.wake(range(u.backend)); }],
  ['writeProtect', 5, () => {
    const o = chance(0.9) ? { protect: flag(), dontWake: chance(0.2) ? flag() : undefined } : junk();
    const u = anyUffd();
    u.writeProtect(range(u.backend), o);
  }],
  ['continue', 3, () => { const u = anyUffd(); u.continue(range(u.backend), opts(['dontWake', 'wp'])); }],
  ['poison', 3, () => {
    // A poisoned page kills whatever touches it (SIGBUS, by design): the region is no longer read.
    const u = notG();
    if (!u) return;
    const r = range(u.backend);
    if (!taint(r)) return; // a read or write in flight there would wake into the poison
    u.poison(r, opts(['dontWake']));
  }],
  ['move', 4, () => {
    // Both ends inside live regions, and the length fits both: MOVE takes the source's pages.
    const u = anyUffd();
    const live = liveRegions(u.backend);
    if (!live.length || chance(0.1)) { u.move(junk(), junk(), length(), junk()); return; }
    const d = inRegion(pick(live));
    const sr = inRegion(pick(live));
    const room = (x, reg) => { try { return Number(reg.address + BigInt(reg.length) - BigInt(x.start)); } catch { return 0; } };
    const owner = (x) => live.find((reg) => { try { const a = BigInt(x.start); return a >= reg.address && a < reg.address + BigInt(reg.length); } catch { return false; } });
    const dr = owner(d);
    const srr = owner(sr);
    let len = typeof d.length === 'number' ? d.length : PAGE;
    if (dr && srr) len = Math.min(len, room(d, dr), room(sr, srr));
    if (chance(0.1)) len = pick([0, -PAGE, PAGE + 1, 1.5, 2 ** 53, NaN, String(PAGE), BigInt(PAGE)]);
    if (srr && srr.guarded) return; // G's pages stay put (a hole would be answered, but keep G simple)
    u.move(chance(0.1) ? dr || d.start : d.start, chance(0.1) ? srr || sr.start : sr.start, len, opts(['dontWake', 'allowSrcHoles']));
  }],
  ['serve', 4, () => {
    const src = pick([PageSource.zero(), PageSource.buffer(Buffer.alloc(3 * PAGE, 9)), PageSource.buffer(new SharedArrayBuffer(2 * PAGE)),
      PageSource.file(tmpFile), PageSource.file(tmpFd, { offset: PAGE, mode: 'pread' }), junk()]);
    const u = anyUffd();
    const r = range(u.backend);
    if (sigbusFeature(u) && !taint(r)) return;
    const s = u.serve(r, src, chance(0.8) ? { readahead: pick([undefined, 'adaptive', false, 0, PAGE, 4 * PAGE, 3, -1, 'x']) } : junk());
    served.push(s);
  }],
  ['unserve', 2, () => { if (served.length) served.splice(int(served.length), 1)[0].stop(); }],
  ['stats', 2, () => { const s = anyUffd().stats(); if (typeof s.faults !== 'number') fail('bad stats', new Error(JSON.stringify(s))); }],
  ['events', 2, () => {
    const u = anyUffd();
    const it = u.events();
    const limit = int(5);
    track(null, (async () => {
      let n = 0;
      for await (const e of it) {
        if (e.type === 'pagefault' && !u.closed && chance(0.7)) {
          try { u.zeropage({ start: e.address - (e.address % BigInt(PAGE)), length: PAGE }); } catch (err) {
            checkError(err);
            if (err.code === 'EEXIST' && !u.closed) u.wake({ start: e.address - (e.address % BigInt(PAGE)), length: PAGE });
          }
        }
        if (++n >= limit) break;
      }
    })());
  }],
  ['ref', 2, () => { const u = anyUffd(); if (u.ref() !== u) fail('ref() must return this'); }],
  ['unref', 2, () => { const u = anyUffd(); if (u.unref() !== u) fail('unref() must return this'); }],
  ['close', 2, () => { const u = notG(); if (u) u.close(); }],
  ['listen', 1, () => { const u = notG(); if (u && !u.closed && u.listenerCount('pagefault') === 0) listen(u); }],
  ['map', 5, () => {
    if (TRACE) setImmediate(() => {});
    if (liveRegions().length >= 12) { const r = anyRegion(false); if (r) r.unmap(); return; }
    const len = chance(0.85) ? (1 + int(32)) * PAGE : pick([0, -PAGE, 1, PAGE + 1, 1.5, 2 ** 47, 2 ** 53, NaN, String(PAGE), BigInt(PAGE), null]);
    const o = chance(0.9) ? { shared: chance(0.3) ? flag() : undefined, hugetlb: chance(0.05) ? flag() : undefined, backend: chance(0.9) ? pick(BACKENDS) : junk() } : junk();
    const r = Region.map(len, o);
    if (TRACE) fs.writeSync(2, `  mapped Region(0x${r.address.toString(16)}+${r.length})\n`);
    regions.push(r);
  }],
  ['read', 8, () => {
    const r = anyRegion(true, false);
    if (r) track(r, r.read(chance(0.8) ? int(r.length / PAGE) * PAGE + int(2) * 100 : pick([-1, 1.5, 2 ** 53, 'x', r.length]), chance(0.8) ? 1 + int(2 * PAGE) : pick([0, -1, 2 ** 40, NaN, '1'])));
  }],
  ['write', 8, () => {
    const r = anyRegion(true, false);
    if (!r) return;
    let data = chance(0.8) ? Buffer.alloc(1 + int(2 * PAGE), int(256)) : pick([junk(), detachedView(), new Uint16Array(4), 'str']);
    // A view of another region (unmapped meanwhile, perhaps): it must stay mapped for the copy.
    // Same backend only: the simulator copies on the main thread, which must not touch native
    // registered memory.
    let other = chance(0.1) ? anyRegion(false, false) : null;
    if (other && other.backend !== r.backend) other = null;
    if (other && !other.unmapped) data = new Uint8Array(other.buffer, 0, Math.min(other.length, 2 * PAGE));
    const p = r.write(chance(0.8) ? int(r.length / PAGE) * PAGE : pick([-1, 1.5, 2 ** 53, r.length, null]), data);
    track(r, p);
    if (other && !other.unmapped) track(other, p); // no poison under a copy that reads it
  }],
  ['dontneed', 3, () => { const r = anyRegion(true); if (r) r.dontneed(chance(0.8) ? int(r.length / PAGE) * PAGE : junk(), chance(0.8) ? PAGE : length()); }],
  ['protect', 2, () => {
    const r = anyRegion(false);
    if (r) r.protect(chance(0.8) ? 0 : junk(), chance(0.8) ? r.length : length(), chance(0.8) ? pick(['none', 'read', 'readwrite']) : junk());
  }],
  ['alias', 2, () => { const r = anyRegion(false); if (r && liveRegions().length < 12) regions.push(r.alias()); }],
  ['residentPages', 2, () => { const r = anyRegion(true); if (r) r.residentPages(); }],
  ['unmap', 2, () => { const r = anyRegion(false); if (r) r.unmap(); }],
  ['buffer', 2, () => { const r = anyRegion(true); if (r) { const b = r.buffer; if (!(b instanceof ArrayBuffer)) fail('buffer is not an ArrayBuffer'); } }],
  ['guardedAccess', 6, () => {
    // The main thread touches G's memory: the self-fault guard must answer (never a hang).
    if (GR.unmapped || G.closed) return;
    const v = new Uint8Array(GR.buffer);
    const off = int(GR.length);
    counts.guardedAccesses++;
    if (chance(0.5)) v[off] = int(256); else void v[off];
  }],
  ['pageSource', 3, () => {
    const r = int(4);
    if (r === 0) PageSource.buffer(junk());
    else if (r === 1) PageSource.file(junk(), chance(0.5) ? junk() : { offset: pick([0, -1, 1.5, 'x', 2 ** 53]), mode: pick(['mmap', 'pread', 'x', 1]) });
    else if (r === 2) PageSource.file(pick(['', '\0x', tmpFile, -1, 1.5, 3]), junk());
    else PageSource.zero();
  }],
  ['probe', 1, () => { const p = probe(chance(0.7) ? { backend: pick(['auto', 'native', ...BACKENDS]) } : undefined); if (typeof p.available !== 'boolean') fail('bad probe'); }],
  ['mapJunk', 1, () => { Region.map(junk(), junk()); }],
  ['openJunk', 1, () => { const u = Userfaultfd.open(junk()); uffds.push(u); listen(u); }],
];

const TABLE = [];
for (const [name, weight, fn] of OPS) for (let i = 0; i < weight; i++) TABLE.push([name, fn]);

function step() {
  const [name, fn] = pick(TABLE);
  const prev = current;
  current = name;
  calls++;
  if (TRACE) fs.writeSync(2, `${calls} ${name}\n`);
  counts.calls++;
  try {
    fn();
    counts.ok++;
  } catch (e) {
    checkError(e);
  } finally {
    current = prev;
  }
}

async function main() {
  while (calls < CALLS) {
    for (let i = 0; i < 64 && calls < CALLS; i++) step();
    await new Promise(setImmediate); // deliver events: handlers run, and fuzz from inside
  }
  current = 'teardown';
  // Closing every uffd releases every pending fault; then every promise must settle.
  const watchdog = setTimeout(() => fail(`${pending.size} promises still pending 20 s after closing every uffd`), 20000);
  for (const u of uffds) u.close();
  for (const s of served) s.stop();
  while (pending.size) await Promise.allSettled([...pending]);
  for (const r of regions) r.unmap();
  clearTimeout(watchdog);
  fs.closeSync(tmpFd);
  fs.unlinkSync(tmpFile);
  process.stdout.write(`FUZZ OK seed=${SEED} ${JSON.stringify(counts)}\n`);
}

main().catch((e) => fail('main failed', e));
