// `npx userfaultfd firecracker-handler` against test/fixtures/firecracker_peer.c, a peer that
// behaves as Firecracker releases do: page_size_kib in bytes, the socket kept open, the fd after
// the body, a balloon's REMOVE storm while faulting, 2 MiB pages, a new pid namespace (the
// jailer), a VM dying mid-restore, and VMs that cannot be served.
const assert = require('assert');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd } = require('../../dist');
const { processExited, pattern, runProcess, skipWithReason, requireNoSanitizer, requirePrivileged, describeNative, reserveHugePages, hugePagePool, scaled, PAGE } = require('../helpers');
const { buildPeer, assertPeerOk, startProcess, PEER_STATUS, parseJson, assertExited, MEM_SIZE, watchdog, listening } = require('../fixtures/firecracker-peer');

const CLI = path.join(__dirname, '..', '..', 'bin', 'userfaultfd.js');
// Firecracker's huge pages are 2 MiB ("huge_pages": "2M"), whatever the kernel's default.
const FIRECRACKER_HUGE = 2 << 20;

/**
 * Runs the command; resolves once it listens (or has exited). `done` resolves with its result.
 * --exit-with-parent: a mocha run killed outright (its deadline timers gone with it) leaves no
 * handler behind waiting for a peer that never comes (--peers 2).
 */
async function startHandler(args) {
  const h = startProcess(process.execPath, [CLI, 'firecracker-handler', ...args, '--exit-with-parent'], { timeoutMs: 45000 });
  await listening(args[0], h.done);
  return h;
}

/** Resolves once `file` exists (a handler listening on its socket), or after 20 s. */
async function untilExists(file) {
  const deadline = Date.now() + scaled(20000);
  while (!fs.existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

function assertServed(vm, { pages = MEM_SIZE / PAGE, unit = PAGE, removed } = {}) {
  assert.strictEqual(vm.status, 'served', JSON.stringify(vm));
  assert.strictEqual(vm.error, undefined);
  assert.strictEqual(vm.mappings, 2);
  assert.strictEqual(vm.pageSize, unit);
  assert.ok(vm.faults >= 1, JSON.stringify(vm));
  // Every page came from the file once (on demand, or prefetched); removed pages came back as
  // zero pages.
  assert.ok(vm.bytes + (vm.prefetchedPages ?? 0) * unit >= pages * unit, JSON.stringify(vm));
  assert.ok(vm.latencyNs.p50 <= vm.latencyNs.p99, JSON.stringify(vm.latencyNs));
  if (removed !== undefined) assert.strictEqual(vm.removedPages, removed);
}

describeNative('npx userfaultfd firecracker-handler', { features: ['EVENT_REMOVE'] }, function () {
  this.timeout(scaled(90000));
  let dir;
  let peerBin;
  let memFile;
  let n = 0;
  const sockPath = () => path.join(dir, `h${n++}.sock`);
  const peer = (sock, args = [], mem = memFile) => runProcess(peerBin, [sock, mem, ...watchdog(), ...args], { timeoutMs: 40000 });

  before(function () {
    requirePrivileged(this, "the Firecracker peer's userfaultfd (as Firecracker's: KVM touches guest memory in kernel mode)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fccli-'));
    try {
      peerBin = buildPeer(dir);
    } catch (e) {
      skipWithReason(this, e.message);
    }
    memFile = path.join(dir, 'mem.img');
    fs.writeFileSync(memFile, pattern(MEM_SIZE, 7));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('the protocol as Firecracker speaks it', function () {
    it('serves a VM, exits 0 once it has gone, and prints its summary (--json)', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const p = await peer(sock);
      const r = await h.done;
      const { removed } = assertPeerOk(p);
      assertExited(r, 0);
      const { vms, summary } = parseJson(r.stdout);
      assert.strictEqual(vms.length, 1);
      assert.ok(vms[0].pid > 0);
      assertServed(vms[0], { removed });
      assert.deepStrictEqual({ vms: summary.vms, failed: summary.failed, removedPages: summary.removedPages }, { vms: 1, failed: 0, removedPages: 8 });
    });

    it('prints a human summary without --json', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile]);
      assertPeerOk(await peer(sock));
      const r = await h.done;
      assertExited(r, 0);
      assert.match(r.stdout, /^firecracker-handler: 1 peer\(s\), \d+ faults, [\d.]+ MiB served, 8 pages removed \(zero on refault\), 0 failed, 0 connection\(s\) rejected\n {2}vm pid \d+: served,/);
    });

    it('reads page_size_kib as bytes (Firecracker filled it with bytes; the old handler hung the VM)', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const { removed } = assertPeerOk(await peer(sock, ['--kib']));
      const r = await h.done;
      assertExited(r, 0);
      assertServed(parseJson(r.stdout).vms[0], { removed });
    });

    it('takes the fd when it arrives after the body (a retried send repeats the body)', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const { removed } = assertPeerOk(await peer(sock, ['--fd-after']));
      const r = await h.done;
      assertExited(r, 0);
      assertServed(parseJson(r.stdout).vms[0], { removed });
      assert.doesNotMatch(r.stderr, /rejected/);
    });

    it('a REMOVE storm while faulting (every ioctl EAGAIN while one is unread): right bytes, every removed page zero and counted', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const p = await peer(sock, ['--remove-storm']);
      const r = await h.done;
      const { removed, madvises } = assertPeerOk(p);
      assert.ok(madvises >= MEM_SIZE / PAGE / 4 - 1, `the storm made only ${madvises} madvise calls`); // one per 4 pages checked, at least
      assertExited(r, 0);
      assertServed(parseJson(r.stdout).vms[0], { removed });
    });

    it('serves 2 MiB hugetlbfs guest memory with 2 MiB copies', async function () {
      const restore = reserveHugePages(this, 8, { size: FIRECRACKER_HUGE });
      try {
        const huge = path.join(dir, 'huge.img');
        fs.writeFileSync(huge, pattern(6 * FIRECRACKER_HUGE, 11));
        const sock = sockPath();
        const h = await startHandler([sock, huge, '--json']);
        const p = await peer(sock, ['--huge', '--remove-pages', '1'], huge);
        const r = await h.done;
        const { removed } = assertPeerOk(p, 6);
        assertExited(r, 0);
        const vm = parseJson(r.stdout).vms[0];
        assertServed(vm, { pages: 6, unit: FIRECRACKER_HUGE, removed });
        assert.strictEqual(vm.bytes % FIRECRACKER_HUGE, 0, `${vm.bytes} bytes: not whole huge pages`);
      } finally {
        restore();
      }
    });

    it('serves several VMs at once (--peers 2) and counts each', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--peers', '2']);
      const [a, b] = await Promise.all([peer(sock), peer(sock, ['--kib'])]);
      const r = await h.done;
      assertPeerOk(a);
      assertPeerOk(b);
      assertExited(r, 0);
      const { vms, summary } = parseJson(r.stdout);
      assert.strictEqual(vms.length, 2);
      for (const vm of vms) assertServed(vm, { removed: 8 });
      assert.strictEqual(summary.removedPages, 16);
    });
  });

  describe('never a guest left hanging', function () {
    /** A VM that cannot be served next to one that can: the first is killed, the second served. */
    async function failsNextToAGoodOne(badArgs, { mem = memFile, handlerArgs = [], started = () => undefined } = {}) {
      const sock = sockPath();
      const h = await startHandler([sock, mem, '--json', '--peers', '2', ...handlerArgs]);
      await started(sock);
      const bad = await peer(sock, [...watchdog(20), ...badArgs], memFile);
      const good = mem === memFile ? await peer(sock) : null;
      const r = await h.done;
      if (good) assertPeerOk(good);
      return { bad, r, ...parseJson(r.stdout) };
    }

    function assertKilled({ bad, r, vms }, code, message) {
      assert.strictEqual(bad.signal, 'SIGKILL', `the VM was not killed: exit ${bad.code} (${PEER_STATUS[bad.code]}) ${bad.stderr}`);
      assertExited(r, 1);
      const failed = vms.find((v) => v.status !== 'served');
      assert.strictEqual(failed.status, 'killed');
      assert.strictEqual(failed.error.code, code);
      const lines = r.stderr.split('\n').filter((l) => l.includes(code));
      assert.strictEqual(lines.length, 1, r.stderr);
      assert.match(lines[0], message);
      assert.match(lines[0], /; killed \(SIGKILL\)$/);
    }

    it('kills a VM whose page size it cannot serve (4 MiB, as the kib * 1024 bug read it), and serves the next', async function () {
      const res = await failsNextToAGoodOne(['--page-size', String(4 << 20)]);
      assertKilled(res, 'ERR_FC_PAGE_SIZE', /page size 4194304 is not supported/);
      assertServed(res.vms.find((v) => v.status === 'served'));
    });

    it('kills a VM with a bad mapping (past the end of the memory file), and serves the next', async function () {
      const res = await failsNextToAGoodOne(['--past-end']);
      assertKilled(res, 'ERR_FC_BAD_MAPPING', /mapping 1: offset \+ size \(6291456\) is past the memory file \(4194304 bytes\)/);
      assertServed(res.vms.find((v) => v.status === 'served'));
    });

    it('kills a VM when the memory file is missing', async function () {
      const res = await failsNextToAGoodOne([], { mem: path.join(dir, 'no-such.img'), handlerArgs: ['--peers', '1'] });
      assertKilled(res, 'ERR_FC_MISSING_FILE', /the memory file .*no-such\.img is missing/);
    });

    it('kills a VM when the memory file cannot be read as a source (a directory made after the handler started)', async function () {
      // A directory given at the start is a usage error (test/doctor/cli-errors.test.js); one
      // that appears at the path later is met when the VM connects.
      const later = path.join(dir, 'becomes-a-directory');
      const res = await failsNextToAGoodOne([], { mem: later, handlerArgs: ['--peers', '1'], started: async (sock) => { await untilExists(sock); fs.mkdirSync(later); } });
      assertKilled(res, 'ERR_FC_SOURCE', /is not a regular file/);
    });

    it('kills a VM whose 2 MiB copy fails at fault time (no free huge page: the kernel answers EEXIST, not ENOMEM)', async function () {
      const { free, size } = hugePagePool();
      const overcommit = Number(fs.readFileSync('/proc/sys/vm/nr_overcommit_hugepages', 'utf8'));
      if (size !== FIRECRACKER_HUGE) skipWithReason(this, `the peer's --huge needs 2 MiB huge pages; this kernel's default is ${size >> 20} MiB`);
      if (free >= 6 || overcommit > 0) skipWithReason(this, `huge pages can be found (${free} free, overcommit ${overcommit}): the copy would not fail`);
      const huge = path.join(dir, 'huge-nomem.img');
      fs.writeFileSync(huge, pattern(6 * FIRECRACKER_HUGE, 13));
      const sock = sockPath();
      const h = await startHandler([sock, huge, '--json']);
      // MAP_NORESERVE: the peer's mmap succeeds with no huge page to back it.
      const bad = await peer(sock, ['--huge', '--noreserve', ...watchdog(20)], huge);
      const r = await h.done;
      assertKilled({ bad, r, vms: parseJson(r.stdout).vms }, 'ERR_FC_SOURCE', /could not be answered: ENOMEM: UFFDIO_COPY failed/);
    });

    it('--on-error keep: logs one line and leaves the VM running', async function () {
      const res = await failsNextToAGoodOne(['--page-size', String(4 * PAGE), ...watchdog(3)], { handlerArgs: ['--on-error', 'keep'] });
      // Left running, it waits on its fault (it holds its own uffd, as Firecracker does) until
      // its own watchdog gives up: nobody killed it.
      assert.deepStrictEqual([res.bad.code, res.bad.signal], [12, null], res.bad.stderr);
      assertExited(res.r, 1);
      const kept = res.vms.find((v) => v.status !== 'served');
      assert.strictEqual(kept.status, 'kept');
      assert.strictEqual(kept.error.code, 'ERR_FC_PAGE_SIZE');
      assert.match(res.r.stderr, /ERR_FC_PAGE_SIZE: .*; left running \(--on-error keep\)\n/);
      assertServed(res.vms.find((v) => v.status === 'served'));
    });

    it('a VM that dies mid-restore is let go; the other VM is served and the handler exits 0', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--peers', '2']);
      const dying = await peer(sock, ['--die-mid-restore']);
      const good = await peer(sock);
      const r = await h.done;
      assert.strictEqual(dying.signal, 'SIGKILL', dying.stderr);
      assertPeerOk(good);
      assertExited(r, 0);
      const { vms } = parseJson(r.stdout);
      assert.strictEqual(vms.length, 2);
      assert.ok(vms.every((v) => v.status === 'served'), r.stdout);
      assert.ok(vms[0].faults >= 1, JSON.stringify(vms[0]));
      assertServed(vms[1], { removed: 8 });
    });

    it('SIGTERM with a VM still running: the VM is killed (nothing would answer its next fault), the summary printed', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const running = peer(sock, ['--linger', '30']);
      while (!/serving 2 mapping/.test(h.output().stderr)) await new Promise((r) => setTimeout(r, 20));
      process.kill(h.pid, 'SIGTERM');
      const r = await h.done;
      const p = await running;
      assert.strictEqual(p.signal, 'SIGKILL', p.stderr);
      assertExited(r, 1);
      const { vms } = parseJson(r.stdout);
      assert.deepStrictEqual([vms.length, vms[0].status, vms[0].error.code], [1, 'killed', 'ERR_FC_SHUTDOWN']);
      assert.match(r.stderr, /ERR_FC_SHUTDOWN: the handler is exiting.*; killed \(SIGKILL\)/);
    });

    it('reports a body that is not JSON and a message without an fd, and keeps serving', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--peers', '2']);
      // A client in a child process: a VM that cannot be served is killed, and this one exits.
      const client = runProcess(process.execPath, ['-e', `
        const net = require('net');
        const { Userfaultfd, sendUffd } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist'))});
        (async () => {
          for (let i = 0; ; i++) {
            try {
              await new Promise((resolve, reject) => {
                const s = net.connect(${JSON.stringify(sock)}, () => s.end('x', resolve));
                s.on('error', reject);
              });
              break;
            } catch (e) {
              if (i > 100) throw e;
              await new Promise((r) => setTimeout(r, 50));
            }
          }
          sendUffd(${JSON.stringify(sock)}, Userfaultfd.open(), '[{"base_host_virt_addr": 4096, "size": ', { framing: 'raw' });
          setTimeout(() => {}, 5000);
        })();`], { timeoutMs: 20000 });
      const c = await client;
      const p = await peer(sock);
      const r = await h.done;
      assertPeerOk(p);
      assertExited(r, 1); // the client's VM could not be served
      const { vms } = parseJson(r.stdout);
      // Killed while its connection is open; once it has closed, its pid may be another's.
      const failed = vms.find((v) => v.status !== 'served');
      if (failed.status === 'killed') assert.strictEqual(c.signal, 'SIGKILL', c.stderr);
      else assert.match(r.stderr, /ERR_FC_BAD_MAPPING: the body is not JSON.*; not killed: its connection has closed/);
      assert.match(r.stderr, /ERR_FC_BAD_MAPPING: the body is not JSON/);
      assert.match(r.stderr, /connection rejected: ERR_UFFD_PEER_HANGUP/);
      const { summary } = parseJson(r.stdout);
      assert.deepStrictEqual([summary.vms, summary.failed, summary.rejected], [2, 1, 1]);
    });
  });

  describe('the jailer: Firecracker in a new pid namespace', function () {
    before(function () {
      requirePrivileged(this, 'a new pid namespace (unshare --pid)', 'root');
      try {
        execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'pipe' });
      } catch (e) {
        skipWithReason(this, `unshare --pid --fork --mount-proc is not permitted here (${e.message.split('\n')[0]})`);
      }
    });
    const jailed = (sock, args = []) => runProcess('unshare', ['--pid', '--fork', '--mount-proc', peerBin, sock, memFile, ...watchdog(), ...args], { timeoutMs: 40000 });

    it('SO_PEERCRED gives the host pid of a peer in a child pid namespace: served, and killable', async function () {
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--peers', '2']);
      const bad = await jailed(sock, ['--page-size', String(4 * PAGE), ...watchdog(20)]);
      const good = await jailed(sock);
      const r = await h.done;
      assertPeerOk(good);
      // (unshare --fork, whose child died of SIGKILL, fails to die of it too and exits 1)
      assert.ok(!bad.timedOut && bad.code !== 0 && bad.code !== 12 && !/verified/.test(bad.stdout), `the jailed VM was not killed: ${bad.code} ${bad.stderr}`);
      const { vms } = parseJson(r.stdout);
      assert.ok(vms.every((v) => v.pid > 1), r.stdout); // host pids, not the namespace's 1
      assert.strictEqual(vms.find((v) => v.status === 'killed').error.code, 'ERR_FC_PAGE_SIZE');
      assertServed(vms.find((v) => v.status === 'served'), { removed: 8 });
    });

    it("a VM run as the jailer's uid: served with --allow-uid, unable to connect without it (the socket is 0600)", async function () {
      requirePrivileged(this, 'running a VM as another uid', 'root');
      // Everything the other uid touches is world-readable; the socket's directory too.
      const open = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fcuid-'));
      try {
        fs.chmodSync(open, 0o755);
        const mem = path.join(open, 'mem.img');
        fs.copyFileSync(memFile, mem);
        fs.chmodSync(mem, 0o644);
        const bin = path.join(open, 'peer');
        fs.copyFileSync(peerBin, bin);
        fs.chmodSync(bin, 0o755);
        const asNobody = (sock) => runProcess('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', bin, sock, mem,
          '--user-mode-only', ...watchdog(20)], { timeoutMs: 30000 });
        const sock = path.join(open, 'allowed.sock');
        const h = await startHandler([sock, mem, '--json', '--allow-uid', '65534']);
        const { removed } = assertPeerOk(await asNobody(sock));
        const r = await h.done;
        assertExited(r, 0);
        const vm = parseJson(r.stdout).vms[0];
        assert.strictEqual(vm.uid, 65534);
        assertServed(vm, { removed });

        const closed = path.join(open, 'closed.sock');
        const h2 = await startHandler([closed, mem, '--json']);
        const refused = await asNobody(closed);
        assert.strictEqual(refused.code, 7, `${refused.code} ${refused.stderr}`); // connect: EACCES
        assert.match(refused.stderr, /connect: Permission denied/);
        process.kill(h2.pid, 'SIGTERM');
        const r2 = await h2.done;
        assertExited(r2, 0);
        assert.strictEqual(parseJson(r2.stdout).summary.vms, 0);
      } finally {
        fs.rmSync(open, { recursive: true, force: true });
      }
    });

    it("a jailed VM faulting from a thread whose namespace tid equals the handler's own tid gets the file's bytes", async function () {
      requireNoSanitizer(this, 'the peer must give a thread of its own the handler\'s tid, counting the threads it starts');
      // The self-fault guard must fire only for this process's own threads (issue 12, item 2):
      // a uffd received from another process is never faulted by the handler's thread.
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json']);
      const p = await jailed(sock, ['--fault-tid', String(h.pid)]);
      const r = await h.done;
      assertPeerOk(p);
      assertExited(r, 0);
      assertServed(parseJson(r.stdout).vms[0], { removed: 8 });
    });
  });

  describe('the command line', function () {
    it('--exit-with-parent: the process that started it killed outright (SIGKILL), the handler stops and prints its summary', async function () {
      const sock = sockPath();
      const out = path.join(dir, `orphan-${n}.out`);
      // A parent that starts the handler waiting for 2 VMs (none comes), says its pid, and is
      // then SIGKILLed, as a test runner killed at its deadline is.
      const parent = startProcess(process.execPath, ['-e', `
        const { spawn } = require('child_process');
        const fs = require('fs');
        const out = fs.openSync(${JSON.stringify(out)}, 'w');
        const h = spawn(process.execPath, [${JSON.stringify(CLI)}, 'firecracker-handler', ${JSON.stringify(sock)}, ${JSON.stringify(memFile)},
          '--peers', '2', '--json', '--exit-with-parent'], { stdio: ['ignore', out, out] });
        console.log(h.pid);
        setInterval(() => {}, 1000);
      `]);
      const started = Date.now() + scaled(20000);
      while (!fs.existsSync(sock) && Date.now() < started) await new Promise((r) => setTimeout(r, 20));
      const pid = Number(parent.output().stdout.trim());
      assert.ok(pid > 0 && fs.existsSync(sock), `the handler did not start: ${parent.output().stderr}`);
      process.kill(parent.pid, 'SIGKILL');
      await parent.done;
      const deadline = Date.now() + scaled(15000);
      while (!processExited(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const alive = !processExited(pid);
      if (alive) process.kill(pid, 'SIGKILL');
      const printed = fs.readFileSync(out, 'utf8');
      assert.ok(!alive, `the handler outlived the process that started it: ${printed}`);
      assert.match(printed, /the process that started it has exited \(--exit-with-parent\): stopping/);
      assert.match(printed, /^\{"type":"summary","vms":0,"failed":0,/m);
    });

    it('refuses bad options with status 2: one line, then the pointer to --help', async function () {
      for (const args of [['s'], ['s', 'm', '--on-error', 'ignore'], ['s', 'm', '--peers', '0'], ['s', 'm', '--nope'],
        ['s', 'm', '--prefetch-mode', 'lazy']]) {
        const r = await runProcess(process.execPath, [CLI, 'firecracker-handler', ...args]);
        assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /^userfaultfd firecracker-handler: [^\n]+\nRun 'userfaultfd firecracker-handler --help' for usage\.\n$/);
      }
    });

    /** The handler's run with `args`, for a failure before any VM: exit 2, one line and the pointer, no stack. */
    async function refusedAtStart(args, problem) {
      const r = await runProcess(process.execPath, [CLI, 'firecracker-handler', ...args]);
      assert.strictEqual(r.code, 2, r.stdout + r.stderr);
      const lines = r.stderr.split('\n');
      assert.deepStrictEqual(lines.slice(1), ["Run 'userfaultfd firecracker-handler --help' for usage.", ''], r.stderr);
      assert.match(lines[0], problem);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      return r;
    }

    it('a socket that cannot be bound: ENOENT, EACCES, EADDRINUSE are one line with the fix, no stack', async function () {
      await refusedAtStart([path.join(dir, 'no-such-dir', 'fc.sock'), memFile],
        /^userfaultfd firecracker-handler: ENOENT: cannot listen on .*no-such-dir\/fc\.sock: the directory .*no-such-dir does not exist; create it \(mkdir -p /);
      // Another handler listening on the path: refused, and that handler's socket is left alone.
      const sock = sockPath();
      const first = await startHandler([sock, memFile]);
      try {
        await refusedAtStart([sock, memFile], /^userfaultfd firecracker-handler: EADDRINUSE: another process is listening on .*; stop it, or choose another socket path$/);
        assert.ok(fs.statSync(sock).isSocket(), 'the first handler lost its socket');
      } finally {
        process.kill(first.pid, 'SIGTERM');
        await first.done;
      }
      if (process.getuid() === 0 && spawnSync('setpriv', ['--version']).status === 0) {
        const locked = fs.mkdtempSync(path.join(dir, 'locked-'));
        fs.chmodSync(locked, 0o755);
        const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'firecracker-handler',
          path.join(locked, 'fc.sock'), '/etc/hostname'], { encoding: 'utf8', timeout: scaled(30000) });
        if (!/ERR_UFFD_UNAVAILABLE/.test(r.stderr)) {
          assert.strictEqual(r.status, 2, r.stderr);
          assert.match(r.stderr, /^userfaultfd firecracker-handler: EACCES: cannot listen on .*fc\.sock: no permission to create it in .*; choose a directory this user may write/);
          assert.doesNotMatch(r.stderr, /\n\s+at /);
        }
      }
    });

    it('--record then --prefetch: the second restore gets the same bytes (or a coded refusal where working sets are missing)', async function () {
      const set = path.join(dir, 'ws.bin');
      const hasWorkingSets = typeof Userfaultfd.prototype.saveWorkingSet === 'function';
      if (!hasWorkingSets) {
        const r = await runProcess(process.execPath, [CLI, 'firecracker-handler', sockPath(), memFile, '--record', set]);
        assert.strictEqual(r.code, 2, r.stderr);
        assert.match(r.stderr, /ERR_UFFD_UNSUPPORTED: --record and --prefetch need working sets/);
        return;
      }
      for (const flag of ['--record', '--prefetch']) {
        const sock = sockPath();
        const h = await startHandler([sock, memFile, '--json', flag, set]);
        const { removed } = assertPeerOk(await peer(sock));
        const r = await h.done;
        assertExited(r, 0);
        const vm = parseJson(r.stdout).vms[0];
        assertServed(vm, { removed });
        assert.ok(fs.existsSync(set), `${flag}: no working set at ${set}`);
        // The set was loaded and used ("not used" below); how many pages prefetch placed before
        // the peer faulted them is a race (a fault queued before serve() goes first): both count.
        if (flag === '--prefetch') {
          assert.ok(Number.isInteger(vm.prefetchedPages) && vm.prefetchedPages + vm.demandFaults > 0, JSON.stringify(vm));
        }
        assert.doesNotMatch(r.stderr, /not used/);
      }
    });

    it('--record --pages, then --prefetch --pages --prefetch-mode eager: the same bytes, from the compact page file', async function () {
      if (typeof Userfaultfd.prototype.saveWorkingSet !== 'function') skipWithReason(this, 'this build has no working sets');
      const set = path.join(dir, 'ws-pages.bin');
      for (const args of [['--record', set, '--pages'], ['--prefetch', set, '--pages', '--prefetch-mode', 'eager']]) {
        const sock = sockPath();
        const h = await startHandler([sock, memFile, '--json', ...args]);
        const { removed } = assertPeerOk(await peer(sock));
        const r = await h.done;
        assertExited(r, 0);
        const vm = parseJson(r.stdout).vms[0];
        assertServed(vm, { removed });
        assert.ok(fs.existsSync(`${set}.pages`), `${args[0]}: no page file beside ${set}`);
        if (args[0] === '--prefetch') assert.ok(vm.prefetchedPages > 0, JSON.stringify(vm));
        assert.doesNotMatch(r.stderr, /not used|Stale|Corrupt/);
      }
      // The memory file changes: the page file is stale, said so, and the VM is served from the file.
      fs.utimesSync(memFile, new Date(), new Date());
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--prefetch', set, '--pages']);
      const { removed } = assertPeerOk(await peer(sock));
      const r = await h.done;
      assertExited(r, 0);
      assertServed(parseJson(r.stdout).vms[0], { removed });
      assert.match(r.stderr, /ERR_UFFD_WORKING_SET_STALE.*modified/);
    });

    it('--prefetch of a working set that is not there: the VM is served on demand, and the line says why', async function () {
      if (typeof Userfaultfd.prototype.saveWorkingSet !== 'function') skipWithReason(this, 'this build has no working sets');
      const sock = sockPath();
      const h = await startHandler([sock, memFile, '--json', '--prefetch', path.join(dir, 'no-such-set')]);
      const { removed } = assertPeerOk(await peer(sock));
      const r = await h.done;
      assertExited(r, 0);
      const vm = parseJson(r.stdout).vms[0];
      assertServed(vm, { removed });
      assert.strictEqual(vm.prefetchedPages, 0);
      assert.match(r.stderr, /mapping 0: working set .*no-such-set not used \(ENOENT.*\); served on demand/);
    });
  });
});
