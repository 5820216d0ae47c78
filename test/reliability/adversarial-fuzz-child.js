// One step of the adversarial fuzzer (adversarial-fuzz.test.js), in its own process:
//   node --expose-gc test/reliability/adversarial-fuzz-child.js --seed N [--hostile PATH]
//
// The API fuzzer (fuzz-child.js) keeps to rules that make a hang impossible. This one breaks
// them on purpose, one seeded scenario per process: non-cooperative features without a
// listener, views of registered memory as sources, faults nobody reads, a JS SIGBUS listener,
// regions over 4 GiB, a detached served buffer, a FIFO as file source, dropped uffds, fork
// events nobody takes, and hostile fd-passing peers (floods, slowloris, garbage, another uid,
// EMFILE, peers dying mid-message). adversarial-fuzz-sources.js adds what comes from outside,
// on either backend: hostile working-set files, hostile HTTP servers, custom sources that
// change their buffers, snapshot destinations of every file type.
//
// What is a finding: a hang (the parent's deadline), a crash (a signal), an error without a
// code, a byte in a region that is neither the source's nor zero, an fd or thread left behind,
// a legitimate peer not served. It prints "ADV OK <scenario> {json}" and exits 0, or
// "ADV FINDING <scenario> <class>: <what>" and exits 1. `--hostile` is the C peer
// (test/fixtures/hostile_peer.c, built by the parent); without it those peers are skipped.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { Worker } = require('worker_threads');
const { Userfaultfd, Region, PageSource, sendUffd, listenForUffd } = require('../../dist');
const { sourceScenarios } = require('./adversarial-fuzz-sources');

const { values: opts } = parseArgs({ options: { seed: { type: 'string' }, hostile: { type: 'string' } } });
const SEED = Number(opts.seed) >>> 0;
const PAGE = 4096;

// ---- seeded randomness ------------------------------------------------------------------------
const { int, pick, chance } = require('./seeded-random').seededRandom(SEED);
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
/** `promise`, or `late` after `ms`; the timer goes with the race, so it never holds the exit. */
function within(promise, ms, late) {
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(r, ms, late); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- outcomes ---------------------------------------------------------------------------------
let scenario = 'start';
// What the step did, printed as it happens: a step that hangs says how far it got.
const notes = new Proxy({}, {
  set(target, key, value) {
    target[key] = value;
    process.stdout.write(`ADV NOTE ${String(key)}=${JSON.stringify(value)}\n`);
    return true;
  },
});
class Finding extends Error {
  constructor(kind, what) {
    super(what);
    this.kind = kind;
  }
}
function finding(kind, what, err) {
  process.stdout.write(`ADV FINDING ${scenario} ${kind}: ${what}\n`);
  if (err && err.stack) process.stdout.write(`${err.stack}\n`);
  process.kill(process.pid, 'SIGKILL'); // not exit(): a pool thread may be stuck in a fault
}
process.on('uncaughtException', (e) => finding('uncaught', String(e && e.message), e));
process.on('unhandledRejection', (e) => finding('unhandled-rejection', String(e && e.message), e));

/** Every error the package throws or rejects with carries a string code. */
function coded(err, where) {
  if (!err || typeof err.code !== 'string' || err.code.length === 0) {
    throw new Finding('uncoded-error', `${where}: ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
  }
  notes[err.code] = (notes[err.code] || 0) + 1;
  return err.code;
}
function attempt(where, fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Finding) throw e;
    coded(e, where);
    return undefined;
  }
}
async function attemptAsync(where, promise) {
  try {
    return await promise;
  } catch (e) {
    if (e instanceof Finding) throw e;
    coded(e, where);
    return undefined;
  }
}

/** `got` (from offset `off`) holds, page by page, the source's bytes or zeros. */
function checkBytes(got, source, off, where) {
  for (let p = 0; p < got.length; p += PAGE) {
    const page = got.subarray(p, p + PAGE);
    const want = source ? source.subarray(off + p, off + p + page.length) : null;
    const isZero = page.every((b) => b === 0);
    const isSource = want && want.length === page.length && Buffer.compare(Buffer.from(page), Buffer.from(want)) === 0;
    if (!isZero && !isSource) throw new Finding('stray-bytes', `${where}: page at ${off + p} is neither the source's nor zero`);
  }
}

function pattern(length, seed) {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((seed + i * 7 + (i >> 12) * 31) & 0xff) || 1;
  return b;
}

// ---- what is left open -------------------------------------------------------------------------
function openFds() {
  const kinds = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let link;
    try { link = fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    const kind = link.startsWith('anon_inode:[userfaultfd]') ? 'uffd' : link.startsWith('socket:') ? 'socket'
      : link === '/dev/null' ? 'devnull' : link.startsWith('anon_inode:') ? link : 'other';
    kinds[kind] = (kinds[kind] || 0) + 1;
  }
  return kinds;
}
const threads = () => fs.readdirSync('/proc/self/task').length;

async function settle() {
  for (let i = 0; i < 3; i++) {
    if (global.gc) global.gc();
    await delay(20);
  }
}

// ---- scenarios --------------------------------------------------------------------------------
const cleanups = [];
const later = (fn) => cleanups.push(fn);
function region(pages, options) {
  const r = Region.map(pages * PAGE, options);
  later(() => attempt('unmap', () => r.unmap()));
  return r;
}
function uffd(options) {
  let u;
  try {
    u = Userfaultfd.open({ backend: 'native', ...options });
  } catch (e) {
    // Without CAP_SYS_PTRACE the kernel refuses EVENT_FORK (EPERM from UFFDIO_API): a coded,
    // documented refusal, which is what this hazard comes to for an unprivileged process. The
    // rest of the features still go through the scenario.
    const features = (options && options.features) || [];
    if (!(e && e.code === 'EPERM' && e.syscall === 'UFFDIO_API' && features.includes('EVENT_FORK'))) throw e;
    coded(e, 'open with EVENT_FORK');
    const rest = features.filter((f) => f !== 'EVENT_FORK');
    if (rest.length === 0) return null;
    u = Userfaultfd.open({ backend: 'native', ...options, features: rest });
  }
  u.on('error', (e) => coded(e, "'error' event")); // a guard's or a source's report, by design
  later(() => u.close());
  return u;
}

const scenarios = {
  // Non-cooperative features, and (mostly) nobody reading their events: madvise, munmap and
  // fork would wait for the read.
  async noncooperative() {
    const features = ['EVENT_REMOVE', 'EVENT_UNMAP', 'EVENT_FORK', 'EVENT_REMAP'].filter(() => chance(0.5));
    if (features.length === 0) features.push(pick(['EVENT_REMOVE', 'EVENT_UNMAP', 'EVENT_FORK']));
    const u = uffd({ features });
    if (u === null) return;
    const pages = 1 + int(16);
    const r = region(pages);
    u.register(r);
    if (chance(0.3)) u.on(pick(['pagefault', 'remove', 'unmap', 'fork']), () => {});
    if (chance(0.5)) u.serve(r, PageSource.zero());
    notes.features = features.join('+');
    for (let i = 0; i < 1 + int(3); i++) {
      const action = pick(['dontneed', 'spawn', 'unmap', 'read']);
      notes[action] = (notes[action] || 0) + 1;
      if (action === 'dontneed') attempt('dontneed', () => r.dontneed(0, pages * PAGE));
      else if (action === 'spawn') spawnSync('true');
      else if (action === 'read' && !u.closed) await attemptAsync('read', within(r.read(0, PAGE), 50));
      else if (action === 'unmap') {
        attempt('unmap', () => r.unmap());
        break;
      }
    }
  },

  // Sources that are views of registered memory: the reader thread would fault on its own uffd.
  async viewSource() {
    const u = uffd();
    const pages = 2 + int(8);
    const r = region(pages);
    const other = chance(0.5) ? region(pages) : r;
    if (other !== r) u.register(other);
    const off = int(pages) * PAGE;
    const view = new Uint8Array(other.buffer, off, (pages * PAGE - off) || PAGE);
    notes.same = other === r;
    if (chance(0.7)) {
      const served = attempt('serve', () => u.serve(r, PageSource.buffer(chance(0.5) ? view : view.buffer), { readahead: pick([0, PAGE, 'adaptive']) }));
      notes.served = served !== undefined;
    } else {
      u.register(r);
      u.on('pagefault', (f) => attempt('copy', () => u.copy(f.address, new Uint8Array(other.buffer, 0, PAGE))));
    }
    const got = await attemptAsync('read', within(r.read(0, PAGE * (1 + int(pages))), 1000, 'late'));
    if (got === 'late') notes.late = true;
  },

  // Faults nobody reads: the pool thread, a Worker, or process exit must still get out.
  async noReader() {
    const u = uffd();
    const r = region(4);
    u.register(r);
    const how = pick(['close', 'worker', 'exit', 'unregister']);
    notes.how = how;
    if (how === 'worker') {
      const w = new Worker(`
        const { workerData } = require('worker_threads');
        const { Userfaultfd, Region } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist'))});
        const u = Userfaultfd.fromFd(workerData.fd);
        const r = Region.map(${PAGE});
        u.register(r);
        require('worker_threads').parentPort.postMessage('touching');
        new Uint8Array(r.buffer)[0];
      `, { eval: true, workerData: { fd: u.fd } });
      await new Promise((resolve) => w.once('message', resolve));
      await delay(20 + int(50));
      await w.terminate();
      return;
    }
    const pending = r.read(0, PAGE * (1 + int(4)));
    pending.catch(() => {});
    await delay(int(30));
    if (how === 'exit') {
      report();
      process.exit(0);
    }
    if (how === 'close') u.close();
    else u.unregister(r);
    const got = await attemptAsync('read', pending);
    if (got) checkBytes(got, null, 0, 'after close');
  },

  // A JS SIGBUS listener replaces the addon's guard; a poisoned page must still reject.
  async sigbusListener() {
    const listen = () => process.on('SIGBUS', () => { notes.sigbusCallbacks = (notes.sigbusCallbacks || 0) + 1; });
    // Before any read, or after one (the addon's own guard is in place by then).
    const when = pick(['before', 'after-a-read']);
    notes.when = when;
    if (when === 'before') listen();
    const withFeature = chance(0.5);
    const u = uffd(withFeature ? { features: ['SIGBUS'] } : {});
    const r = region(2);
    u.register({ start: r.address, length: PAGE });
    await attemptAsync('read', r.read(PAGE, PAGE)); // the second page is plain memory
    if (when !== 'before') listen();
    if (!withFeature) attempt('poison', () => u.poison({ start: r.address, length: PAGE }));
    notes.feature = withFeature;
    const got = await attemptAsync('read', within(r.read(0, PAGE), 3000, 'late'));
    if (got === 'late') throw new Finding('hang', `a read of a poisoned page with a SIGBUS listener never settled (${notes.sigbusCallbacks} callbacks)`);
    if (got !== undefined) throw new Finding('wrong-result', 'a read of a poisoned page resolved');
  },

  // Regions over 4 GiB: a buffer or a coded error, and read/write/serve keep working.
  async huge() {
    const length = pick([2 ** 31, 2 ** 32, 2 ** 32 + PAGE, 2 ** 33]);
    notes.length = length;
    const r = attempt('map', () => region(length / PAGE));
    if (!r) return;
    const buf = attempt('buffer', () => r.buffer);
    if (buf) notes.byteLength = buf.byteLength === length;
    const u = uffd();
    const src = pattern(2 * PAGE, SEED);
    attempt('serve', () => u.serve(r, PageSource.buffer(src)));
    const off = pick([0, length - PAGE, length - 2 * PAGE, 2 ** 32 - PAGE].filter((o) => o + PAGE <= length));
    const got = await attemptAsync('read', r.read(off, PAGE));
    if (got) checkBytes(got, off < src.length ? src : null, off < src.length ? off : 0, `read at ${off}`);
    await attemptAsync('write', r.write(length - PAGE, Buffer.alloc(PAGE, 7)));
  },

  // A served buffer detached (transferred) and collected: no freed heap bytes in the region.
  async detach() {
    const u = uffd();
    const pages = 4 + int(28);
    const r = region(pages);
    const src = pattern(pages * PAGE, SEED);
    const ab = new ArrayBuffer(pages * PAGE);
    new Uint8Array(ab).set(src);
    attempt('serve', () => u.serve(r, PageSource.buffer(ab), { readahead: pick([0, PAGE]) }));
    structuredClone(ab, { transfer: [ab] });
    for (let i = 0; i < 3; i++) {
      if (global.gc) global.gc();
      new Uint8Array(pages * PAGE).fill(0xee); // reuse of the freed memory shows as 0xee
    }
    const got = await attemptAsync('read', r.read(0, pages * PAGE));
    if (got) checkBytes(got, src, 0, 'after detach');
  },

  // A FIFO as file source: open(2) would block the JS thread.
  async fifo() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adv-fifo-'));
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fifo = path.join(dir, 'f');
    if (spawnSync('mkfifo', [fifo]).status !== 0) return;
    const u = uffd();
    const r = region(2);
    const s = attempt('serve', () => u.serve(r, PageSource.file(fifo)));
    if (s !== undefined) await attemptAsync('read', within(r.read(0, PAGE), 500));
  },

  // Uffds dropped without close(): collected, their fds and threads gone.
  async drop() {
    const n = 1 + int(4);
    const regions = [];
    (() => {
      for (let i = 0; i < n; i++) {
        const u = Userfaultfd.open({ backend: 'native' });
        const r = region(1);
        regions.push(r);
        if (chance(0.5)) u.serve(r, PageSource.zero());
        else {
          u.register(r);
          u.on('pagefault', () => {});
          u.unref();
        }
      }
    })();
    notes.dropped = n;
  },

  // Fork events with no 'fork' listener: the children's uffds must not pile up.
  async forkNoListener() {
    const u = uffd({ features: ['EVENT_FORK'] });
    if (u === null) return;
    const r = region(1);
    u.register(r);
    u.on('pagefault', () => {});
    const n = 2 + int(6);
    for (let i = 0; i < n; i++) spawnSync('true');
    notes.forks = n;
    await delay(50); // the FORK events reach JavaScript; no GC yet
    const open = openFds().uffd || 0;
    if (open > 1) throw new Finding('fd-leak', `${open - 1} uffds of fork children open with no 'fork' listener`);
  },

  // Hostile fd-passing peers, then a legitimate one that must be served.
  async fdpass() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adv-sock-'));
    fs.chmodSync(dir, 0o755);
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sock = path.join(dir, 's');
    const options = { messageTimeoutMs: 200 + int(600), maxPayload: pick([16, 1024, 65536]) };
    const root = process.getuid() === 0;
    if (root && chance(0.3)) options.mode = 0o666;
    const l = listenForUffd(sock, options);
    later(() => l.close());
    const errors = [];
    l.on('connectionError', (e) => {
      coded(e, 'connectionError');
      errors.push(e.code);
    });
    const peers = [];
    const kinds = [];
    const base = openFds();
    if (chance(0.2)) {
      // EMFILE: lower our own limit just above what is open, then idle connections.
      const open = fs.readdirSync('/proc/self/fd').length;
      if (spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${open + 6 + int(10)}`]).status === 0) {
        kinds.push('emfile');
        later(() => spawnSync('prlimit', ['--pid', String(process.pid), '--nofile=4096']));
      }
    }
    for (let i = 0; i < 1 + int(4); i++) {
      const kind = pick(['flood', 'slowloris', 'garbage', 'nobody', 'dying', 'idle', 'hangup']);
      kinds.push(kind);
      peers.push(hostilePeer(kind, sock, root));
    }
    notes.peers = kinds.join('+');
    await Promise.all(peers);
    for (const s of idleSockets.splice(0)) s.destroy();
    if (kinds.includes('emfile')) {
      await delay(50);
      spawnSync('prlimit', ['--pid', String(process.pid), '--nofile=4096']);
    }
    const legit = Userfaultfd.open({ backend: 'native' });
    later(() => legit.close());
    const sent = await (async () => {
      for (let i = 0; i < 50; i++) {
        try {
          sendUffd(sock, legit, 'legit', { timeoutMs: 2000 });
          return true;
        } catch (e) {
          coded(e, 'sendUffd');
          if (e.code !== 'EAGAIN' && e.code !== 'ECONNREFUSED') return false;
          await delay(20);
        }
      }
      return false;
    })();
    if (!sent) throw new Finding('not-served', 'a legitimate peer could not connect after the hostile ones');
    const item = await within(l.next(), 5000, null);
    if (!item || item.done || item.value.payload.toString() !== 'legit') {
      throw new Finding('not-served', `a legitimate peer was not served after ${kinds.join('+')} (errors ${errors.join()})`);
    }
    item.value.uffd.close();
    legit.close();
    notes.errors = errors.length;
    l.close();
    await settle();
    const after = openFds();
    for (const k of ['uffd', 'devnull']) {
      if ((after[k] || 0) > (base[k] || 0)) throw new Finding('fd-leak', `${k}: ${base[k] || 0} -> ${after[k]} after the listener closed`);
    }
  },
};

Object.assign(scenarios, sourceScenarios({
  int, pick, chance, notes, attempt, attemptAsync, within, checkBytes, pattern, Finding, later, PAGE,
  uffd: (options) => uffd(options), region: (pages, options) => region(pages, options),
}));

const idleSockets = [];
function netPeer(sock, onConnect) {
  return new Promise((resolve) => {
    const s = net.connect(sock, () => onConnect(s, resolve));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}
function runPeer(file, args, killAfterMs) {
  return new Promise((resolve) => {
    const p = spawn(file, args, { stdio: 'ignore' });
    const t = killAfterMs ? setTimeout(() => p.kill('SIGKILL'), killAfterMs) : null;
    p.on('error', () => resolve());
    p.on('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
function hostilePeer(kind, sock, root) {
  const c = opts.hostile;
  switch (kind) {
    case 'flood':
      return c ? runPeer(c, ['flood', sock, String(100 + int(2000)), String(1 + int(32))], 3000) : Promise.resolve();
    case 'garbage':
      if (c && chance(0.5)) return runPeer(c, ['garbage', sock, String(1 + int(4096)), String(int(1000))], 3000);
      return netPeer(sock, (s) => s.end(Buffer.from(Array.from({ length: 1 + int(200) }, () => int(256)))));
    case 'nobody':
      if (!root || !c) return Promise.resolve();
      return runPeer('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', c, 'garbage', sock, '64', String(int(100))], 3000);
    case 'slowloris':
      return netPeer(sock, (s, done) => {
        let n = 0;
        const t = setInterval(() => {
          if (++n > 10 + int(30) || s.destroyed) {
            clearInterval(t);
            s.destroy();
            done();
          } else {
            s.write(Buffer.from([n === 1 ? 0 : 0x55]));
          }
        }, 10 + int(40));
      });
    case 'dying':
      return c ? runPeer(c, ['slowloris', sock, '1000', '5'], 50 + int(300)) : Promise.resolve();
    case 'idle':
      return netPeer(sock, (s, done) => {
        idleSockets.push(s);
        done();
      });
    case 'hangup':
      return netPeer(sock, (s) => s.end(Buffer.from([0, 0x55, 0x46, 0x44, 200, 0, 0, 0, 1, 2])));
    default:
      return Promise.resolve();
  }
}

let reported = false;
function report() {
  if (reported) return;
  reported = true;
  process.stdout.write(`ADV OK ${scenario} ${JSON.stringify(notes)}\n`);
}

async function main() {
  // Warm the thread pool and the module so that what a scenario leaves behind shows.
  await fs.promises.readFile(__filename);
  await Promise.all([1, 2, 3, 4].map(() => fs.promises.stat(__filename)));
  const fdsBefore = openFds();
  const threadsBefore = threads();
  scenario = process.env.ADV_SCENARIO || pick(Object.keys(scenarios));
  process.stdout.write(`ADV STEP ${scenario}\n`); // for the parent, should this step hang
  await scenarios[scenario]();
  for (const fn of cleanups.splice(0).reverse()) {
    try { fn(); } catch (e) { coded(e, 'cleanup'); }
  }
  await settle();
  const fdsAfter = openFds();
  if ((fdsAfter.uffd || 0) > (fdsBefore.uffd || 0)) throw new Finding('fd-leak', `userfaultfds open: ${fdsBefore.uffd || 0} -> ${fdsAfter.uffd}`);
  if (threads() > threadsBefore) throw new Finding('thread-leak', `threads: ${threadsBefore} -> ${threads()} after cleanup`);
  report();
  // The process must now exit by itself: a thread or handle left running is a hang, the
  // parent's finding.
}

main().catch((e) => {
  if (e instanceof Finding) finding(e.kind, e.message);
  else finding('unexpected', String(e && e.message), e);
});
