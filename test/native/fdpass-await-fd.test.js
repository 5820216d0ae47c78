// listenForUffd({ awaitFd: true }): a raw body whose fd comes in a later message on the same
// connection, as Firecracker's handlers allow for (they retry the receive).
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { listenForUffd } = require('../../dist');
const { runProcess, skipWithReason, delay, requirePrivileged, describeNative, scaled, PAGE } = require('../helpers');
const { buildPeer, watchdog } = require('../fixtures/firecracker-peer');

/** Connects (retrying until the listener is up), writes `bytes` without an fd, and stays. */
async function sendWithoutFd(sock, bytes) {
  for (let i = 0; ; i++) {
    try {
      return await new Promise((resolve, reject) => {
        const s = net.connect(sock, () => s.write(bytes, () => resolve(s)));
        s.on('error', reject);
      });
    } catch (e) {
      if (i > 100) throw e;
      await delay(20);
    }
  }
}

describeNative('listenForUffd awaitFd', function () {
  this.timeout(scaled(30000));
  let dir;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-awaitfd-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('yields the uffd that follows the body, with every byte received as the payload', async function () {
    requirePrivileged(this, "the Firecracker peer's userfaultfd");
    let peerBin;
    try {
      peerBin = buildPeer(dir);
    } catch (e) {
      skipWithReason(this, e.message);
    }
    const mem = path.join(dir, 'mem.img');
    fs.writeFileSync(mem, Buffer.alloc(2 * PAGE, 1));
    const sock = path.join(dir, 'a.sock');
    const listener = listenForUffd(sock, { awaitFd: true });
    // The peer sends its body alone, then again with the uffd; it is killed once received.
    const peer = runProcess(peerBin, [sock, mem, '--fd-after', ...watchdog(20)], { timeoutMs: 25000 });
    try {
      const { value, done } = await listener.next();
      assert.strictEqual(done, false);
      const text = value.payload.toString();
      const body = text.slice(0, text.length / 2);
      assert.strictEqual(text, body + body);
      assert.strictEqual(JSON.parse(body).length, 2);
      assert.strictEqual(listener.errors, 0);
      process.kill(value.peer.pid, 'SIGKILL');
      value.uffd.close();
    } finally {
      listener.close();
    }
    assert.strictEqual((await peer).signal, 'SIGKILL');
  });

  it('a body whose fd never comes fails with ERR_UFFD_TIMEOUT after messageTimeoutMs; without awaitFd, at once with ERR_UFFD_NO_FD', async function () {
    for (const [options, code] of [[{ awaitFd: true, messageTimeoutMs: 300 }, 'ERR_UFFD_TIMEOUT'], [{}, 'ERR_UFFD_NO_FD']]) {
      const sock = path.join(dir, `${code}.sock`);
      const errors = [];
      const listener = listenForUffd(sock, { ...options, onError: (e) => errors.push(e) });
      const s = await sendWithoutFd(sock, '[{"base_host_virt_addr":4096}]');
      try {
        for (let i = 0; i < scaled(200) && errors.length === 0; i++) await delay(20);
        assert.deepStrictEqual(errors.map((e) => e.code), [code]);
        assert.strictEqual(listener.received, 0);
      } finally {
        s.destroy();
        listener.close();
      }
    }
  });

  it('refuses an awaitFd that is not a boolean', function () {
    assert.throws(() => listenForUffd(path.join(dir, 'x.sock'), { awaitFd: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
