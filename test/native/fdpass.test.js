// sendUffd / listenForUffd: a userfaultfd handed to another process over a Unix socket.
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { Userfaultfd, sendUffd, listenForUffd } = require('../../dist');
const { pattern, runChild, delay, PAGE, describeNative } = require('../helpers');

const DIST = path.join(__dirname, '..', '..', 'dist');

/** Resolves with the first connection error the listener reports. */
function nextError(listener) {
  return new Promise((resolve) => listener.once('connectionError', resolve));
}

/** Sends raw bytes (no fd) and ends the connection. */
function sendPlain(socketPath, bytes) {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath, () => s.end(bytes, resolve));
    s.on('error', reject);
  });
}

describeNative('fdpass: sendUffd / listenForUffd', function () {
  let dir;
  let sock;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fdpass-'));
  });
  beforeEach(function () {
    sock = path.join(dir, `s${Math.random().toString(36).slice(2, 8)}.sock`);
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('round trip: faults in the sending process are answered by the receiver, with its credentials', async function () {
    const listener = listenForUffd(sock);
    const pages = 8;
    const child = runChild(`
      const { Userfaultfd, Region, sendUffd } = require(${JSON.stringify(DIST)});
      const region = Region.map(${pages * PAGE});
      const uffd = Userfaultfd.open();
      uffd.register(region);
      sendUffd(${JSON.stringify(sock)}, uffd, JSON.stringify({ pid: process.pid, start: region.address.toString() }));
      region.read(0, ${pages * PAGE}).then((b) => {
        const crypto = require('crypto');
        console.log(crypto.createHash('sha256').update(b).digest('hex'));
        uffd.close();
        region.unmap();
      });
    `, { timeoutMs: 20000 });
    let received;
    try {
      const { value, done } = await listener.next();
      assert.strictEqual(done, false);
      received = value;
      const body = JSON.parse(value.payload.toString());
      assert.strictEqual(value.peer.pid, body.pid);
      assert.strictEqual(value.peer.uid, process.getuid());
      assert.strictEqual(value.peer.gid, process.getgid());
      assert.strictEqual(value.uffd.backend, 'native');
      const start = BigInt(body.start);
      const src = pattern(pages * PAGE, 5);
      value.uffd.on('pagefault', (f) => {
        const off = Number(f.address - start);
        value.uffd.copy(f.address, src.subarray(off, off + PAGE));
      });
      const r = await child;
      assert.strictEqual(r.timedOut, false, r.stderr);
      assert.strictEqual(r.code, 0, r.stderr);
      const expected = require('crypto').createHash('sha256').update(src).digest('hex');
      assert.strictEqual(r.stdout.trim(), expected);
      await value.peerClosed; // the sender closed its connection (and exited)
      assert.strictEqual(listener.received, 1);
      assert.strictEqual(listener.errors, 0);
    } finally {
      if (received) received.uffd.close();
      listener.close();
    }
  });

  it('carries a binary payload intact, and a raw (Firecracker-style) one', async function () {
    const listener = listenForUffd(sock);
    const uffd = Userfaultfd.open();
    const got = [];
    try {
      const bin = Buffer.from([0, 1, 2, 255, 0, 0, 7]);
      sendUffd(sock, uffd, bin);
      sendUffd(sock, uffd, '[{"a":1}]', { framing: 'raw' });
      sendUffd(sock, uffd.fd, Buffer.alloc(0));
      for (let i = 0; i < 3; i++) got.push((await listener.next()).value);
      const payloads = got.map((x) => x.payload.toString('hex')).sort();
      assert.deepStrictEqual(payloads, ['', bin.toString('hex'), Buffer.from('[{"a":1}]').toString('hex')].sort());
      for (const x of got) assert.notStrictEqual(x.uffd.fd, uffd.fd);
    } finally {
      for (const x of got) x.uffd.close();
      uffd.close();
      listener.close();
    }
  });

  it('a message without an fd is an error on that connection; the listener keeps serving', async function () {
    const errors = [];
    const listener = listenForUffd(sock, { onError: (e) => errors.push(e) });
    const uffd = Userfaultfd.open();
    let item;
    try {
      const err = nextError(listener);
      await sendPlain(sock, '[{"base_host_virt_addr":1}]');
      const e = await err;
      assert.strictEqual(e.code, 'ERR_UFFD_NO_FD');
      assert.strictEqual(e.peer.pid, process.pid);
      sendUffd(sock, uffd, 'ok');
      item = (await listener.next()).value;
      assert.strictEqual(item.payload.toString(), 'ok');
      assert.strictEqual(errors.length, 1);
      assert.strictEqual(listener.errors, 1);
    } finally {
      if (item) item.uffd.close();
      uffd.close();
      listener.close();
    }
  });

  it('a payload over maxPayload is an error (framed and raw)', async function () {
    const listener = listenForUffd(sock, { maxPayload: 100 });
    const uffd = Userfaultfd.open();
    try {
      let err = nextError(listener);
      sendUffd(sock, uffd, Buffer.alloc(200, 1));
      assert.strictEqual((await err).code, 'ERR_UFFD_PAYLOAD_TOO_LARGE');
      err = nextError(listener);
      sendUffd(sock, uffd, Buffer.alloc(200, 0x41), { framing: 'raw' });
      assert.strictEqual((await err).code, 'ERR_UFFD_PAYLOAD_TOO_LARGE');
      sendUffd(sock, uffd, Buffer.alloc(100, 1));
      const item = (await listener.next()).value;
      assert.strictEqual(item.payload.length, 100);
      item.uffd.close();
      assert.strictEqual(listener.errors, 2);
    } finally {
      uffd.close();
      listener.close();
    }
  });

  it('a peer that hangs up mid-message, or before sending anything, is an error', async function () {
    const listener = listenForUffd(sock);
    try {
      let err = nextError(listener);
      const header = Buffer.from([0, 0x55, 0x46, 0x44, 100, 0, 0, 0]);
      await sendPlain(sock, Buffer.concat([header, Buffer.alloc(10)]));
      let e = await err;
      assert.strictEqual(e.code, 'ERR_UFFD_PEER_HANGUP');
      assert.strictEqual(e.received, 18);
      err = nextError(listener);
      await sendPlain(sock, Buffer.alloc(0));
      e = await err;
      assert.strictEqual(e.code, 'ERR_UFFD_PEER_HANGUP');
      assert.strictEqual(e.received, 0);
    } finally {
      listener.close();
    }
  });

  it('an fd that is not a userfaultfd is an error, and is closed', async function () {
    const listener = listenForUffd(sock);
    const fd = fs.openSync('/dev/null', 'r');
    try {
      const before = fs.readdirSync('/proc/self/fd').length;
      const err = nextError(listener);
      sendUffd(sock, fd, 'x');
      const e = await err;
      assert.strictEqual(e.code, 'ERR_UFFD_NOT_USERFAULTFD');
      await delay(20);
      assert.strictEqual(fs.readdirSync('/proc/self/fd').length, before);
    } finally {
      fs.closeSync(fd);
      listener.close();
    }
  });

  it('a connection that never completes its message fails with ERR_UFFD_TIMEOUT', async function () {
    const listener = listenForUffd(sock, { messageTimeoutMs: 50 });
    const s = net.connect(sock);
    try {
      const e = await nextError(listener);
      assert.strictEqual(e.code, 'ERR_UFFD_TIMEOUT');
      await new Promise((resolve) => s.once('close', resolve)); // the listener closed it
    } finally {
      s.destroy();
      listener.close();
    }
  });

  it('rejects bad arguments before any syscall', function () {
    assert.throws(() => sendUffd(123, 3, 'x'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sendUffd(sock, 'x', 'x'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sendUffd(sock, -1, 'x'), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sendUffd('/tmp/' + 'x'.repeat(200), 3, 'x'), { code: 'ERR_OUT_OF_RANGE' });
    const u = Userfaultfd.open();
    u.close();
    assert.throws(() => sendUffd(sock, u, 'x'), { code: 'ERR_UFFD_CLOSED' });
    assert.throws(() => listenForUffd(sock, { maxPayload: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sendUffd(path.join(dir, 'nobody.sock'), 0, 'x'), { code: 'ENOENT', syscall: 'connect' });
  });

  it('close() ends the iteration and removes the socket file; a break out of for await closes it', async function () {
    const listener = listenForUffd(sock);
    const pending = listener.next();
    assert.ok(fs.existsSync(sock));
    listener.close();
    assert.deepStrictEqual(await pending, { value: undefined, done: true });
    assert.ok(!fs.existsSync(sock));
    listener.close(); // idempotent
    // break out of for await closes it too
    const l2 = listenForUffd(sock);
    const u = Userfaultfd.open();
    sendUffd(sock, u, 'a');
    for await (const item of l2) {
      item.uffd.close();
      break;
    }
    assert.strictEqual(l2.closed, true);
    u.close();
  });

  it('a second listener at a live listener\'s path fails with EADDRINUSE; the first keeps serving', async function () {
    const first = listenForUffd(sock, { onError: () => {} });
    try {
      assert.throws(() => listenForUffd(sock), { code: 'EADDRINUSE', syscall: 'bind' });
      assert.ok(fs.existsSync(sock), 'the live socket file was removed');
      const u = Userfaultfd.open();
      sendUffd(sock, u, 'still here');
      const { value } = await first.next();
      assert.strictEqual(value.payload.toString(), 'still here');
      value.uffd.close();
      u.close();
    } finally {
      first.close();
    }
  });

  it('a socket left behind by a listener that died is removed, and the path is listened on again', async function () {
    const r = await runChild(`
      const { listenForUffd } = require(${JSON.stringify(DIST)});
      listenForUffd(${JSON.stringify(sock)});
      console.log('listening');
      process.kill(process.pid, 'SIGKILL');`);
    assert.strictEqual(r.signal, 'SIGKILL', r.stderr);
    assert.ok(fs.statSync(sock).isSocket(), 'the dead listener left no socket file');
    const listener = listenForUffd(sock);
    try {
      const u = Userfaultfd.open();
      sendUffd(sock, u, 'again');
      const { value } = await listener.next();
      assert.strictEqual(value.payload.toString(), 'again');
      value.uffd.close();
      u.close();
    } finally {
      listener.close();
    }
  });

  it('lifecycle: a ref\'d listener holds the process, an unref\'d one does not; exit with one open is clean', async function () {
    const held = await runChild(`
      const { listenForUffd } = require(${JSON.stringify(DIST)});
      const l = listenForUffd(${JSON.stringify(sock + '1')});
      setTimeout(() => { console.log('closing'); l.close(); }, 300);
    `, { timeoutMs: 10000 });
    assert.strictEqual(held.timedOut, false);
    assert.strictEqual(held.code, 0, held.stderr);
    assert.strictEqual(held.stdout.trim(), 'closing');
    const unrefd = await runChild(`
      const { listenForUffd } = require(${JSON.stringify(DIST)});
      listenForUffd(${JSON.stringify(sock + '2')}).unref();
    `, { timeoutMs: 10000 });
    assert.strictEqual(unrefd.timedOut, false);
    assert.deepStrictEqual([unrefd.code, unrefd.signal], [0, null], unrefd.stderr);
    const exited = await runChild(`
      const { listenForUffd, Userfaultfd, sendUffd } = require(${JSON.stringify(DIST)});
      const l = listenForUffd(${JSON.stringify(sock + '3')});
      const u = Userfaultfd.open();
      sendUffd(${JSON.stringify(sock + '3')}, u, 'x');
      l.next().then(({ value }) => { console.log(value.payload.toString()); process.exit(0); });
    `, { timeoutMs: 10000 });
    assert.strictEqual(exited.timedOut, false);
    assert.deepStrictEqual([exited.code, exited.signal], [0, null], exited.stderr);
    assert.strictEqual(exited.stdout.trim(), 'x');
  });

  it('lifecycle: a Worker terminated with a listener open (and a connection pending) ends cleanly', async function () {
    const r = await runChild(`
      const { Worker } = require('worker_threads');
      const net = require('net');
      const w = new Worker(\`
        const { listenForUffd } = require(${JSON.stringify(DIST)});
        const { parentPort } = require('worker_threads');
        const l = listenForUffd(${JSON.stringify(sock + '4')});
        l.on('connectionError', () => {});
        parentPort.postMessage('listening');
      \`, { eval: true });
      w.on('message', () => {
        const s = net.connect(${JSON.stringify(sock + '4')}, () => setTimeout(() => w.terminate().then(() => { s.destroy(); console.log('done'); }), 50));
      });
    `, { timeoutMs: 10000 });
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.deepStrictEqual([r.code, r.signal], [0, null], r.stderr);
    assert.strictEqual(r.stdout.trim(), 'done');
  });
});
