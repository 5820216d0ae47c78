// The adversarial fuzzer's scenarios for what comes from outside (issue 24), on either backend:
// hostile working-set files (a FIFO, a device, a huge sparse file, a directory, a symlink planted
// at the temporary name), hostile HTTP servers (an endless body, no length, a silent HEAD, a
// redirect to another origin, a missing ETag, a lying Content-Range, drops and stalls), custom
// sources that change the buffers they returned, and snapshot destinations of every file type.
// adversarial-fuzz-child.js runs one per process; `t` is its toolkit.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { PageSource, readWorkingSet } = require('../../dist');
const { startPeer } = require('../fixtures/http-peers');

/**
 * t: { int, pick, chance, notes, attempt, attemptAsync, within, checkBytes, pattern, Finding,
 * later, uffd(options), region(pages, options), PAGE }.
 */
function sourceScenarios(t) {
  const { int, pick, chance, notes, attempt, attemptAsync, within, checkBytes, pattern, Finding, later, PAGE } = t;
  const backend = () => (notes.backend = pick(['native', 'simulator']));
  const scratch = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adv-src-'));
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  // VmHWM, this process's own peak: getrusage's maxRSS carries the parent's over exec.
  const peakRssMiB = () => Math.round(Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024);

  /** Reads `pages` pages of `r` in a random order and span; each is the source's or zeros. */
  async function readBack(r, pages, source, where, ms = 3000) {
    for (let i = 0; i < 1 + int(3); i++) {
      const first = int(pages);
      const n = 1 + int(pages - first);
      const got = await attemptAsync('read', within(r.read(first * PAGE, n * PAGE), ms, 'late'));
      if (got === 'late') throw new Finding('hang', `${where}: a read of ${n} page(s) did not settle within ${ms} ms`);
      if (got) checkBytes(got, source, first * PAGE, where);
    }
  }

  return {
    // A set to prefetch that is not a set file, and a set recorded beside a planted symlink.
    async setFiles() {
      const b = backend();
      const dir = scratch();
      const kind = pick(['fifo', 'devzero', 'devnull', 'huge', 'dir', 'symlinkTmp', 'missingDir', 'garbage']);
      notes.kind = kind;
      const pages = 2 + int(6);
      const u = t.uffd({ backend: b });
      const r = t.region(pages, { backend: b });
      const src = pattern(pages * PAGE, int(255));
      const set = path.join(dir, 'set');
      const victim = path.join(dir, 'victim');
      fs.writeFileSync(victim, 'precious');
      let options = { prefetch: set };
      if (kind === 'fifo') execFileSync('mkfifo', [set]);
      else if (kind === 'devzero' || kind === 'devnull') fs.symlinkSync(`/dev/${kind.slice(3)}`, set);
      else if (kind === 'huge') {
        fs.writeFileSync(set, '');
        fs.truncateSync(set, pick([2 ** 30, 2 ** 40]));
      } else if (kind === 'dir') fs.mkdirSync(set);
      else if (kind === 'garbage') fs.writeFileSync(set, Buffer.from(Array.from({ length: int(200) }, () => int(256))));
      else if (kind === 'missingDir') options = { record: path.join(dir, 'none', 'set') };
      else {
        // The temporary names the old code used, and a few guesses more.
        for (const name of [`set.${process.pid}.tmp`, 'set.tmp', `set.${process.pid + 1}.tmp`]) fs.symlinkSync(victim, path.join(dir, name));
        options = chance(0.5) ? { record: set } : { record: set, prefetch: set };
      }
      const served = attempt('serve', () => u.serve(r, PageSource.buffer(src), options));
      notes.served = served !== undefined;
      if (peakRssMiB() > 1024) throw new Finding('memory', `serve() of a ${kind} set: peak RSS ${peakRssMiB()} MiB`);
      if (served === undefined) return;
      await readBack(r, pages, src, `${kind} set`);
      if (options.record !== undefined) {
        attempt('saveWorkingSet', () => u.saveWorkingSet(r, options.record));
        u.close();
        if (kind === 'symlinkTmp') attempt('readWorkingSet', () => readWorkingSet(set));
      }
      if (fs.readFileSync(victim, 'utf8') !== 'precious') throw new Finding('clobbered', `a symlink beside the ${kind} set was written through`);
    },

    // A hostile HTTP server: the bytes are the object's or zeros (or a coded rejection), nothing
    // hangs, and the caller's header never reaches another origin.
    async httpPeer() {
      const b = backend();
      const pages = 4 + int(12);
      const data = pattern(pages * PAGE, int(255));
      const peer = await startPeer(data);
      later(() => peer.close());
      const other = await startPeer(pattern(pages * PAGE, 255 - (data[0] & 0x7f)));
      later(() => other.close());
      const kind = pick(['endless', 'headNoLength', 'silentHead', 'crossOrigin', 'noEtag', 'total', 'drop', 'stall', 'noHead', 'norange']);
      notes.kind = kind;
      const options = {
        chunkSize: pick([1, 2, 4]) * PAGE, timeoutMs: 150 + int(250), retries: int(3), retryDelayMs: 5,
        onError: pick(['sigbus', 'zeropage']), headers: { 'x-api-key': 'secret' },
      };
      if (chance(0.3)) options.size = pages * PAGE;
      if (kind === 'endless') peer.endless = true;
      else if (kind === 'headNoLength') peer.headNoLength = true;
      else if (kind === 'silentHead') peer.silentHeads = 1 + int(2);
      else if (kind === 'crossOrigin') {
        peer.redirect = other.url;
        if (chance(0.5)) options.crossOriginRedirects = 'follow';
      } else if (kind === 'noEtag') peer.noEtag = true;
      else if (kind === 'total') peer.total = pages * PAGE + PAGE * (1 + int(4));
      else if (kind === 'noHead') peer.noHead = true;
      else if (kind === 'norange') peer.fail = 'norange';
      else {
        peer.fail = kind;
        peer.failures = 1 + int(4);
      }
      notes.options = `${options.chunkSize / PAGE}p/${options.timeoutMs}ms/${options.retries}r/${options.onError}`;
      const u = t.uffd({ backend: b });
      const r = t.region(pages, { backend: b });
      const source = PageSource.http(peer.url, options);
      if (chance(0.4)) notes.ready = (await attemptAsync('ready', within(source.ready(), options.timeoutMs + 2000, 'late'))) === 'late' ? 'late' : 'settled';
      if (notes.ready === 'late') throw new Finding('hang', `ready() outlived its timeoutMs (${options.timeoutMs})`);
      attempt('serve', () => u.serve(r, source, { readahead: pick([false, 'adaptive']) }));
      // The object, or the other origin's when it was followed on purpose.
      const expected = kind === 'crossOrigin' && options.crossOriginRedirects === 'follow' ? pattern(pages * PAGE, 255 - (data[0] & 0x7f)) : data;
      await readBack(r, pages, expected, `http ${kind}`, 4000);
      if (other.headers.some((h) => h['x-api-key'] !== undefined)) throw new Finding('leaked-header', 'the caller\'s header reached another origin');
    },

    // A custom source that changes its buffers once returned: the bytes served are those of the
    // settled promise, and nothing escapes as an uncaught exception.
    async customBuffers() {
      const b = backend();
      const pages = 4 + int(12);
      const data = pattern(pages * PAGE, int(255));
      const kind = pick(['detach', 'shrink', 'pool', 'scribble', 'arrayBuffer']);
      notes.kind = kind;
      const chunk = pick([1, 2, 4]) * PAGE;
      const pool = new Uint8Array(chunk);
      const read = async (offset, length) => {
        await new Promise((resolve) => setTimeout(resolve, int(3)));
        const bytes = data.subarray(offset, offset + length);
        if (kind === 'pool') {
          pool.set(bytes);
          return pool.subarray(0, length);
        }
        const ab = kind === 'shrink' ? new ArrayBuffer(length, { maxByteLength: length }) : new ArrayBuffer(length);
        const view = new Uint8Array(ab);
        view.set(bytes);
        // A later turn of the event loop (the documented rule): a microtask queued before the
        // promise settles runs before anyone could copy the bytes.
        const after = pick([(fn) => setImmediate(fn), (fn) => setTimeout(fn, int(3))]);
        if (kind === 'detach') after(() => structuredClone(ab, { transfer: [ab] }));
        else if (kind === 'shrink') after(() => ab.resize(0));
        else if (kind === 'scribble') after(() => view.fill(0xee));
        return kind === 'arrayBuffer' ? ab : view;
      };
      const u = t.uffd({ backend: b });
      const r = t.region(pages, { backend: b });
      let failed = 0;
      u.on('error', () => failed++);
      attempt('serve', () => u.serve(r, PageSource.custom(read, { size: pages * PAGE, chunkSize: chunk, timeoutMs: 1000, retries: 1 }),
        { readahead: pick([false, 'adaptive', 2 * PAGE]) }));
      const reads = Array.from({ length: 2 + int(6) }, () => {
        const first = int(pages);
        return [first, 1 + int(pages - first)];
      });
      const got = await Promise.all(reads.map(([first, n]) => attemptAsync('read', within(r.read(first * PAGE, n * PAGE), 4000, 'late'))));
      for (const [i, g] of got.entries()) {
        if (g === 'late') throw new Finding('hang', `a ${kind} read never settled`);
        const [first, n] = reads[i];
        if (g && failed === 0 && !g.equals(data.subarray(first * PAGE, (first + n) * PAGE))) {
          throw new Finding('stray-bytes', `${kind}: pages ${first}..${first + n - 1} are not the bytes read() returned`);
        }
        if (g) checkBytes(g, data, first * PAGE, kind);
      }
      notes.failed = failed;
    },

    // snapshot() to every kind of destination: settles (resolved or a coded rejection), never
    // hangs, and a resolved one's file holds every byte.
    async snapshotDest() {
      const b = backend();
      const dir = scratch();
      const kind = pick(['file', 'fifo', 'fifoReader', 'socket', 'devnull', 'devfull', 'dir', 'danglingLink', 'missingDir',
        'fdFile', 'fdPipe', 'fdSocket', 'fdDevnull']);
      notes.kind = kind;
      const dest = path.join(dir, 'dest');
      let target = dest;
      const fds = [];
      later(() => fds.forEach((fd) => attempt('close', () => fs.closeSync(fd))));
      if (kind === 'fifo' || kind === 'fifoReader' || kind === 'fdPipe') execFileSync('mkfifo', [dest]);
      if (kind === 'fifoReader' || kind === 'fdPipe') fds.push(fs.openSync(dest, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
      if (kind === 'fdPipe') target = fds[fds.push(fs.openSync(dest, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)) - 1];
      if (kind === 'socket' || kind === 'fdSocket') {
        const server = net.createServer((c) => c.resume()).listen(dest);
        await new Promise((resolve) => server.once('listening', resolve));
        later(() => server.close());
        if (kind === 'fdSocket') {
          const c = net.connect(dest);
          await new Promise((resolve) => c.once('connect', resolve));
          later(() => c.destroy());
          target = c._handle.fd;
        }
      }
      if (kind === 'devnull' || kind === 'devfull') target = `/dev/${kind.slice(3)}`;
      if (kind === 'dir') fs.mkdirSync(dest);
      if (kind === 'danglingLink') fs.symlinkSync(path.join(dir, 'nowhere'), dest);
      if (kind === 'missingDir') target = path.join(dir, 'none', 'dest');
      if (kind === 'fdFile') target = fds[fds.push(fs.openSync(dest, 'w')) - 1];
      if (kind === 'fdDevnull') target = fds[fds.push(fs.openSync('/dev/null', 'w')) - 1];
      const pages = 1 + int(64);
      const u = t.uffd({ backend: b });
      const r = t.region(pages, { backend: b });
      const data = pattern(pages * PAGE, int(255));
      await attemptAsync('write', r.write(0, data));
      const res = await attemptAsync('snapshot', within(u.snapshot(r, target), 4000, 'late'));
      if (res === 'late') throw new Finding('hang', `snapshot() to a ${kind} did not settle`);
      notes.resolved = res !== undefined;
      if (res !== undefined && (kind === 'file' || kind === 'fdFile' || kind === 'danglingLink')) {
        const file = kind === 'danglingLink' ? path.join(dir, 'nowhere') : dest;
        const img = fs.readFileSync(file);
        if (res.bytes !== pages * PAGE || !img.equals(data)) {
          throw new Finding('wrong-result', `snapshot() to a ${kind} resolved ${res.bytes} bytes; the file holds ${img.length}`);
        }
      }
    },
  };
}

module.exports = { sourceScenarios };
