// examples/firecracker-handler against test/fixtures/firecracker_peer.c, Firecracker's side of
// the snapshot-restore handshake (built here with cc).
const assert = require('assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { Userfaultfd, sendUffd } = require('../../dist');
const { nativeProbe, pattern, runChild, runProcess, delay, skipWithReason, requirePrivileged } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');
const HANDLER = path.join(ROOT, 'examples', 'firecracker-handler', 'index.js');
const FIXTURE = path.join(__dirname, '..', 'fixtures', 'firecracker_peer.c');
const MEM_SIZE = 4 << 20;

const run = (file, args, timeoutMs = 30000) => runProcess(file, args, { timeoutMs });

/** Retries `fn` while the socket is not there yet. */
async function whenListening(fn) {
  for (let i = 0; ; i++) {
    try {
      return fn();
    } catch (e) {
      if (i > 200 || (e.code !== 'ENOENT' && e.code !== 'ECONNREFUSED')) throw e;
      await delay(50);
    }
  }
}

const PEER_STATUS = {
  2: 'usage', 3: 'memory file', 4: 'mmap', 5: 'userfaultfd/UFFDIO_API', 6: 'UFFDIO_REGISTER', 7: 'connect',
  8: 'sendmsg', 9: 'a page differs from the memory file', 10: 'madvise', 11: 'a removed page is not zero',
  12: 'watchdog: a fault was not answered',
};
function assertPeerOk(r) {
  assert.strictEqual(r.timedOut, false, `the peer timed out: ${r.stderr}`);
  assert.strictEqual(r.signal, null, r.stderr);
  assert.strictEqual(r.code, 0, `peer exit ${r.code} (${PEER_STATUS[r.code]}): ${r.stderr}`);
  assert.match(r.stdout, /1024 pages verified, 8 removed pages read as zeros/);
}

describe('examples/firecracker-handler with the C Firecracker peer (native-only)', function () {
  this.timeout(60000);
  let dir;
  let peerBin;
  let memFile;
  before(function () {
    if (!nativeProbe.available || !nativeProbe.features.includes('EVENT_REMOVE')) skipWithReason(this, `the kernel backend or its EVENT_REMOVE is unavailable (${nativeProbe.reason || 'no EVENT_REMOVE'})`);
    requirePrivileged(this, "the Firecracker peer's userfaultfd (as Firecracker's: KVM touches guest memory in kernel mode)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fc-'));
    peerBin = path.join(dir, 'firecracker_peer');
    try {
      execFileSync('cc', ['-O2', '-Wall', '-o', peerBin, FIXTURE], { stdio: 'pipe' });
    } catch (e) {
      skipWithReason(this, `cannot build the fixture with cc (${e.message.split('\n')[0]})`);
    }
    memFile = path.join(dir, 'mem.img');
    fs.writeFileSync(memFile, pattern(MEM_SIZE, 3));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves every page from the memory file, the removed range as zeros, and exits 0 when the peer has gone', async function () {
    const sock = path.join(dir, 'one.sock');
    const handler = runChild(HANDLER, { isFile: true, args: [sock, memFile], timeoutMs: 40000 });
    const peer = await run(peerBin, [sock, memFile]);
    const h = await handler;
    assertPeerOk(peer);
    assert.strictEqual(h.timedOut, false, `the handler did not exit: ${h.stderr}`);
    assert.deepStrictEqual([h.code, h.signal], [0, null], h.stderr);
    assert.match(h.stdout, /^firecracker-handler: 1 peer\(s\), \d+ faults, [\d.]+ MiB served, 8 pages removed/);
    assert.doesNotMatch(h.stderr, /ERR_|fatal/);
  });

  it('serves two peers connecting at once (one with the deprecated page_size_kib)', async function () {
    const sock = path.join(dir, 'two.sock');
    // --peers 2: one peer may come and go before the other connects; the handler waits for both.
    const handler = runChild(HANDLER, { isFile: true, args: [sock, memFile, '--peers', '2'], timeoutMs: 40000 });
    const [a, b] = await Promise.all([run(peerBin, [sock, memFile]), run(peerBin, [sock, memFile, '--kib'])]);
    const h = await handler;
    assertPeerOk(a);
    assertPeerOk(b);
    assert.strictEqual(h.timedOut, false, `the handler did not exit: ${h.stderr}`);
    assert.deepStrictEqual([h.code, h.signal], [0, null], h.stderr);
    assert.match(h.stdout, /2 peer\(s\)/);
    const faults = Number(/(\d+) faults/.exec(h.stdout)[1]);
    assert.ok(faults >= 2, h.stdout);
  });

  it('reports a malformed JSON body and a message without an fd, and keeps serving', async function () {
    const sock = path.join(dir, 'bad.sock');
    const handler = runChild(HANDLER, { isFile: true, args: [sock, memFile], timeoutMs: 40000 });
    const uffd = Userfaultfd.open();
    try {
      await whenListening(() => sendUffd(sock, uffd, '[{"base_host_virt_addr": 4096, "size": ', { framing: 'raw' }));
      await new Promise((resolve, reject) => {
        const s = net.connect(sock, () => s.end('[{"base_host_virt_addr":4096,"size":4096,"offset":0,"page_size":4096}]', resolve));
        s.on('error', reject);
      });
      const peer = await run(peerBin, [sock, memFile]);
      const h = await handler;
      assertPeerOk(peer);
      assert.strictEqual(h.timedOut, false, `the handler did not exit: ${h.stderr}`);
      assert.deepStrictEqual([h.code, h.signal], [0, null], h.stderr);
      assert.match(h.stderr, /the body is not JSON/);
      assert.match(h.stderr, /ERR_UFFD_NO_FD/);
      assert.match(h.stdout, /1 peer\(s\).*2 connection\(s\) rejected/);
    } finally {
      uffd.close();
    }
  });

  it('rejects mappings that do not fit the memory file, and survives', async function () {
    const sock = path.join(dir, 'range.sock');
    const handler = runChild(HANDLER, { isFile: true, args: [sock, memFile], timeoutMs: 40000 });
    const uffd = Userfaultfd.open();
    try {
      const body = JSON.stringify([{ base_host_virt_addr: 1 << 30, size: 2 * MEM_SIZE, offset: 0, page_size: 4096 }]);
      await whenListening(() => sendUffd(sock, uffd, body, { framing: 'raw' }));
      const peer = await run(peerBin, [sock, memFile]);
      const h = await handler;
      assertPeerOk(peer);
      assert.deepStrictEqual([h.code, h.signal], [0, null], h.stderr);
      assert.match(h.stderr, /past the memory file/);
    } finally {
      uffd.close();
    }
  });
});
