// `firecracker-handler` with working sets it cannot use (issue 24), against the Firecracker peer
// fixture, each run with a deadline: a FIFO as --prefetch (the bad set is logged with its code
// and skipped, the VM served on demand; SIGTERM is heard while it runs), and --record into a folder that
// does not exist (the save failure is logged with its code, and the exit status says so).
const assert = require('assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { runProcess, describeNative, startProcess, delay } = require('../helpers');
const { assertPeerOk, peerSuite } = require('../fixtures/firecracker-peer');

const CLI = path.join(__dirname, '..', '..', 'bin', 'userfaultfd.js');
const MEM_SIZE = 4 << 20;
const DEADLINE = 30000;

describeNative('reliability: firecracker-handler working sets it cannot use', { features: ['EVENT_REMOVE'] }, function () {
  this.timeout(DEADLINE * 2);
  const fc = peerSuite('uffd-fcsets-', MEM_SIZE, 7);
  let n = 0;
  const sockPath = () => path.join(fc.dir, `h${n++}.sock`);
  const handler = (args) => startProcess(process.execPath, [CLI, 'firecracker-handler', ...args], { timeoutMs: DEADLINE });
  const peer = (sock) => runProcess(fc.peerBin, [sock, fc.memFile], { timeoutMs: DEADLINE });

  it('--prefetch <FIFO>: the set is logged with its code and skipped; the VM is served on demand; exit 0', async () => {
    const fifo = path.join(fc.dir, 'set.fifo');
    execFileSync('mkfifo', [fifo]);
    const sock = sockPath();
    const h = handler([sock, fc.memFile, '--json', '--prefetch', fifo]);
    const p = await peer(sock);
    const r = await h.done;
    assert.strictEqual(r.timedOut, false, `the handler hung: ${r.stderr}`);
    assertPeerOk(p);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /mapping 0: working set .*set\.fifo not used \(EINVAL: .*not a regular file.*\); served on demand/);
    const vm = JSON.parse(r.stdout.trim().split('\n')[0]);
    assert.strictEqual(vm.status, 'served', JSON.stringify(vm));
  });

  it('--prefetch <FIFO> while a VM runs: SIGTERM ends the handler (the VM failed as ERR_FC_SHUTDOWN)', async () => {
    const fifo = path.join(fc.dir, 'set2.fifo');
    execFileSync('mkfifo', [fifo]);
    const sock = sockPath();
    const h = handler([sock, fc.memFile, '--prefetch', fifo]);
    for (let i = 0; i < 500 && !fs.existsSync(sock); i++) await delay(10);
    const vm = startProcess(fc.peerBin, [sock, fc.memFile, '--linger', '20', '--watchdog', '20'], { timeoutMs: DEADLINE });
    // Once the VM is served (or, before the fix, once the handler is stuck on the FIFO).
    for (let i = 0; i < 300 && !/pages verified/.test(vm.output().stdout); i++) await delay(10);
    process.kill(h.pid, 'SIGTERM');
    const r = await h.done;
    await vm.done;
    assert.strictEqual(r.timedOut, false, `SIGTERM was not heard: ${r.stderr}`);
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERR_FC_SHUTDOWN/);
  });

  it('--record <missing folder>/set: the save failure is logged with its code, and the exit status is 1', async () => {
    const set = path.join(fc.dir, 'no-such-folder', 'set');
    const sock = sockPath();
    const h = handler([sock, fc.memFile, '--json', '--record', set]);
    assertPeerOk(await peer(sock));
    const r = await h.done;
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.match(r.stderr, /vm pid \d+: working set .*no-such-folder\/set not saved: ENOENT: /);
    assert.strictEqual(r.code, 1, `exit status ${r.code}: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.strictEqual(lines[0].status, 'served');
    assert.deepStrictEqual([lines[0].recordError.code, lines[0].recordError.path], ['ENOENT', set]);
    assert.strictEqual(lines[1].unsaved, 1);
    assert.strictEqual(fs.existsSync(path.dirname(set)), false);
  });
});
