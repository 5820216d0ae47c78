// `userfaultfd criu-lazy-pages` serving real lazy restores of CRIU 4.1.1 (in a Debian trixie
// chroot: test/fixtures/criu/chroot.js): programs that are checkpointed with pages in memory,
// restored with every lazy page missing, and that then read, fork, mremap, munmap and
// MADV_DONTNEED that memory, from several threads. Each prints its pre-dump checksum again
// after the restore, or the test fails. Then the same with the pages read over HTTP (s3rver),
// and the bad input the daemon must refuse without leaving restored tasks hung.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { describeNative, skipWithReason, startProcess } = require('../helpers');
const { prepare, Chroot, checkpoint, restore, waitForFile, alive } = require('../fixtures/criu/chroot');

const BIN = path.join(__dirname, '../../bin/userfaultfd.js');
/** [mode, MiB]: restored.c's modes; the checksum loop over 64 MiB, as the issue asks. */
const PROGRAMS = [['checksum', 64], ['fork', 32], ['remap', 32], ['dontneed', 32], ['threads', 32]];

/** Starts the daemon for checkpoint `c`; resolves once its socket is there. */
async function startDaemon(c, args = []) {
  const sock = path.join(c.hostImg, 'lazy-pages.socket');
  const images = args.includes('-D') ? [] : ['-D', c.hostImg];
  const daemon = startProcess(process.execPath, [BIN, 'criu-lazy-pages', ...images, '--json', ...args], { timeoutMs: 90000 });
  const deadline = Date.now() + 30000;
  while (!fs.existsSync(sock)) {
    const { stderr } = daemon.output();
    if (Date.now() > deadline || /ERR_/.test(stderr)) throw new Error(`the daemon did not listen: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return daemon;
}

function json(stdout) {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return { tasks: lines.filter((l) => l.type === 'task'), summary: lines.find((l) => l.type === 'summary') };
}

function kill(pid) {
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/** Waits (bounded) until `pid` is gone; returns whether it went. */
async function gone(pid, ms) {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

describeNative('criu-lazy-pages: CRIU lazy restores served by this daemon', { features: ['EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE', 'EVENT_UNMAP'] }, function () {
  this.timeout(120000);
  let chroot = null;
  let prog;
  const pids = [];

  before(function () {
    this.timeout(900000); // the first run builds the chroot
    const why = prepare();
    if (why) skipWithReason(this, why);
    chroot = new Chroot().start();
    const check = chroot.run(['criu', 'check']);
    if (check.status !== 0) {
      chroot.stop();
      chroot = null;
      skipWithReason(this, `criu check fails on this kernel: ${`${check.stdout}${check.stderr}`.trim().split('\n').pop()}`);
    }
    prog = chroot.compile();
  });
  after(() => {
    for (const pid of pids) kill(pid);
    if (chroot) chroot.stop();
  });

  /** criu restore of `c`, which must succeed; else the test fails with both sides' logs. */
  async function restoreOrFail(c, daemon) {
    const r = await restore(chroot, c);
    if (r.status === 0) return;
    const d = await daemon.done;
    assert.fail(`criu restore failed (${r.status}): ${fs.readFileSync(path.join(c.hostImg, 'restore.log'), 'utf8').slice(-800)}\n` +
      `daemon (${d.code}): ${d.stderr}`);
  }

  /** Checkpoints `mode`, restores it served by the daemon (with `args`), checks its output. */
  async function restored(mode, mib, name, args = []) {
    const c = await checkpoint(chroot, prog, mode, mib, name);
    pids.push(c.pid);
    const daemon = await startDaemon(c, args);
    await restoreOrFail(c, daemon);
    const out = await waitForFile(c.hostLog, (t) => /^post /m.test(t), 60000, `${mode}: the post-restore checksum`);
    const d = await daemon.done;
    const stillRunning = alive(c.pid);
    kill(c.pid);
    assert.strictEqual(d.timedOut, false, `the daemon did not exit: ${d.stderr}`);
    assert.deepStrictEqual([d.code, d.signal], [0, null], d.stderr);
    assert.strictEqual(/^post ([0-9a-f]{16})$/m.exec(out)[1], c.pre, `${mode}: the restored program's checksum`);
    assert.ok(stillRunning, `${mode}: the restored program died: ${out}`);
    const { tasks, summary } = json(d.stdout);
    assert.strictEqual(summary.status, 0);
    const task = tasks.find((t) => t.pid === c.pid && t.child === undefined);
    assert.ok(task, `a summary of pid ${c.pid}: ${d.stdout}`);
    assert.strictEqual(task.exited, false, 'every page was in while the program ran');
    return { c, out, tasks };
  }

  // fork: large enough that the fill after "FTSR" cannot have put every page in before the
  // program, which forks the moment it runs, has forked (its child must find pages missing).
  for (const [mode, mib] of PROGRAMS.map(([m, n]) => [m, m === 'fork' ? 256 : n])) {
    it(`${mode} (${mib} MiB): prints its pre-dump checksum after the restore`, async function () {
      const { c, out, tasks } = await restored(mode, mib, `local-${mode}`);
      if (mode === 'fork') {
        assert.strictEqual(/^child ([0-9a-f]{16})$/m.exec(out)[1], c.pre, 'the fork child reads the lazy pages the parent had at the fork');
        assert.ok(tasks.some((t) => t.pid === c.pid && t.child === 1), 'the child\'s uffd was served');
      }
    });
  }

  it('working sets: --record on one restore, --prefetch on the next (the same images): prefetched, the same checksum', async function () {
    const c = await checkpoint(chroot, prog, 'checksum', 16, 'working-set');
    pids.push(c.pid);
    const prefix = path.join(c.hostDir, 'ws');
    for (const [flag, round] of [['--record', 1], ['--prefetch', 2]]) {
      const daemon = await startDaemon(c, [flag, prefix]);
      const before = fs.readFileSync(c.hostLog, 'utf8').length;
      const r = await restore(chroot, c);
      assert.strictEqual(r.status, 0, `restore ${round}: ${daemon.output().stderr}`);
      const out = (await waitForFile(c.hostLog, (t) => /^post /m.test(t.slice(before)), 60000, `restore ${round}`)).slice(before);
      const d = await daemon.done;
      kill(c.pid);
      for (let i = 0; i < 500 && fs.existsSync(`/proc/${c.pid}`); i++) await new Promise((res) => setTimeout(res, 10));
      fs.rmSync(path.join(c.hostImg, 'lazy-pages.socket'), { force: true });
      assert.deepStrictEqual([d.code, d.timedOut], [0, false], d.stderr);
      assert.strictEqual(/^post ([0-9a-f]{16})$/m.exec(out)[1], c.pre, `restore ${round}`);
      const task = json(d.stdout).tasks[0];
      if (flag === '--record') {
        const sets = fs.readdirSync(c.hostDir).filter((f) => f.startsWith(`ws.${c.pid}.`));
        assert.ok(sets.length > 0, 'a working set per lazy area');
      } else {
        // The sets were found and served with; how much of them the prefetch threads install
        // before the fill after "FTSR" reaches them is a race (both are hints of the same pages).
        assert.ok(task.workingSetPages > 0, `the recorded sets were used: ${JSON.stringify(task)}`);
        assert.doesNotMatch(d.stderr, /working set not used/);
      }
    }
  });

  it('started as scripts start criu lazy-pages (-d --pidfile --status-fd -o -v4): it listens when it returns, the program prints its checksum', async function () {
    const c = await checkpoint(chroot, prog, 'checksum', 16, 'daemon-mode');
    pids.push(c.pid);
    const pidfile = path.join(c.hostDir, 'lazy.pid');
    const { spawn } = require('child_process');
    const parent = spawn(process.execPath, [BIN, 'criu-lazy-pages', '-D', c.hostImg, '-d', '--pidfile', pidfile,
      '--status-fd', '3', '-o', 'lazy.log', '-v4'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    parent.stderr.on('data', (d) => { stderr += d; });
    const status = [];
    parent.stdio[3].on('data', (d) => status.push(...d));
    const [code] = await Promise.race([
      new Promise((resolve) => parent.on('close', (...a) => resolve(a))),
      new Promise((resolve, reject) => setTimeout(() => reject(new Error(`-d did not return: ${stderr}`)), 30000)),
    ]);
    assert.strictEqual(code, 0, stderr);
    assert.deepStrictEqual(status, [0], 'one NUL byte on --status-fd, then EOF');
    assert.ok(fs.existsSync(path.join(c.hostImg, 'lazy-pages.socket')), 'listening once -d returns');
    const daemonPid = Number(fs.readFileSync(pidfile, 'utf8'));
    assert.notStrictEqual(daemonPid, parent.pid);
    assert.match(fs.readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8'), /criu-lazy-pages/, 'the pidfile names the daemon');
    pids.push(daemonPid);
    const r = await restore(chroot, c);
    const log = () => fs.readFileSync(path.join(c.hostImg, 'lazy.log'), 'utf8');
    assert.strictEqual(r.status, 0, `criu restore: ${log()}`);
    const out = await waitForFile(c.hostLog, (t) => /^post /m.test(t), 60000, 'the post-restore checksum');
    assert.ok(await gone(daemonPid, 60000), `the daemon exits once every page is in: ${log()}`);
    kill(c.pid);
    assert.strictEqual(/^post ([0-9a-f]{16})$/m.exec(out)[1], c.pre);
    assert.match(log(), /listening on .*lazy-pages\.socket/);
    assert.match(log(), new RegExp(`pid ${c.pid}: serving \\d+ lazy pages`));
  });

  describe('with the pages read over HTTP (s3rver, a presigned URL)', function () {
    let s3 = null;
    before(async function () {
      if (chroot === null) this.skip();
      const { startS3 } = require('../fixtures/http-peers');
      s3 = await startS3();
    });
    after(async () => {
      if (s3) await s3.close();
    });

    for (const [mode, mib] of PROGRAMS) {
      it(`${mode} (${mib} MiB): prints its pre-dump checksum after the restore`, async function () {
        const c = await checkpoint(chroot, prog, mode, mib, `http-${mode}`);
        pids.push(c.pid);
        const url = await s3.put(`${mode}/pages-1.img`, fs.readFileSync(path.join(c.hostImg, 'pages-1.img')));
        // The daemon's images have no pages file: every lazy page comes from S3. (criu restore
        // reads its own copy, for the pages it restores itself.)
        const meta = path.join(c.hostDir, 'meta');
        fs.mkdirSync(meta);
        for (const f of fs.readdirSync(c.hostImg)) {
          if (f.endsWith('.img') && !f.startsWith('pages-')) fs.copyFileSync(path.join(c.hostImg, f), path.join(meta, f));
        }
        const daemon = await startDaemon(c, ['-D', meta, '-W', c.hostImg, '--pages-url', `pages-1.img=${url}`]);
        await restoreOrFail(c, daemon);
        const out = await waitForFile(c.hostLog, (t) => /^post /m.test(t), 60000, `${mode}: the post-restore checksum`);
        const d = await daemon.done;
        kill(c.pid);
        assert.deepStrictEqual([d.code, d.signal, d.timedOut], [0, null, false], d.stderr);
        assert.strictEqual(/^post ([0-9a-f]{16})$/m.exec(out)[1], c.pre, `${mode}: the restored program's checksum`);
        if (mode === 'fork') assert.strictEqual(/^child ([0-9a-f]{16})$/m.exec(out)[1], c.pre, 'the fork child\'s checksum');
      });
    }
  });

  describe('bad input: a coded error, exit status 1, and no restored task left hanging', function () {
    before(function () {
      if (chroot === null) this.skip();
    });

    /** A checkpoint, and a copy of its images for the daemon that `spoil` damages. */
    async function spoiled(name, spoil) {
      const c = await checkpoint(chroot, prog, 'checksum', 4, name);
      pids.push(c.pid);
      const copy = path.join(c.hostDir, 'copy');
      fs.mkdirSync(copy);
      for (const f of fs.readdirSync(c.hostImg)) if (f.endsWith('.img')) fs.copyFileSync(path.join(c.hostImg, f), path.join(copy, f));
      spoil(copy, c);
      return { c, copy };
    }

    /** The daemon refuses the images before it listens: criu restore cannot connect, nothing is restored. */
    async function refusedBeforeListening(c, copy, code) {
      const d = await startProcess(process.execPath, [BIN, 'criu-lazy-pages', '-D', copy, '-W', c.hostImg, '--json'], { timeoutMs: 30000 }).done;
      assert.deepStrictEqual([d.code, d.timedOut], [1, false], d.stderr);
      assert.match(d.stderr, new RegExp(`criu-lazy-pages: ${code}: `));
      assert.strictEqual(json(d.stdout).summary.error.code, code);
      assert.strictEqual(fs.existsSync(path.join(c.hostImg, 'lazy-pages.socket')), false, 'it never listened');
      const r = await restore(chroot, c);
      assert.notStrictEqual(r.status, 0, 'criu restore fails: no lazy-pages daemon');
      assert.ok(await gone(c.pid, 5000), 'no task was left restored');
    }

    it('a missing image (mm-PID.img): ERR_CRIU_IMAGE_MISSING before it listens', async function () {
      const { c, copy } = await spoiled('missing', (dir, cp) => fs.unlinkSync(path.join(dir, `mm-${cp.pid}.img`)));
      await refusedBeforeListening(c, copy, 'ERR_CRIU_IMAGE_MISSING');
    });

    it('a corrupt image (a pagemap record cut short): ERR_CRIU_IMAGE_CORRUPT before it listens', async function () {
      const { c, copy } = await spoiled('corrupt', (dir, cp) => {
        const f = path.join(dir, `pagemap-${cp.pid}.img`);
        fs.truncateSync(f, fs.statSync(f).size - 3);
      });
      await refusedBeforeListening(c, copy, 'ERR_CRIU_IMAGE_CORRUPT');
    });

    it('a pages file shorter than its pagemap says: ERR_CRIU_IMAGE_CORRUPT before it listens', async function () {
      const { c, copy } = await spoiled('short', (dir) => fs.truncateSync(path.join(dir, 'pages-1.img'), 4096));
      await refusedBeforeListening(c, copy, 'ERR_CRIU_IMAGE_CORRUPT');
    });

    it('a pid with no images (the images of another checkpoint): ERR_CRIU_NO_IMAGES, the restored task killed', async function () {
      const other = await checkpoint(chroot, prog, 'checksum', 4, 'other');
      pids.push(other.pid);
      const c = await checkpoint(chroot, prog, 'checksum', 4, 'nopid');
      pids.push(c.pid);
      const daemon = startProcess(process.execPath, [BIN, 'criu-lazy-pages', '-D', other.hostImg, '-W', c.hostImg, '--json'], { timeoutMs: 30000 });
      await waitForFile(path.join(c.hostImg, 'lazy-pages.socket'), () => fs.existsSync(path.join(c.hostImg, 'lazy-pages.socket')), 30000, 'the socket');
      const r = await restore(chroot, c);
      const d = await daemon.done;
      assert.deepStrictEqual([d.code, d.timedOut], [1, false], d.stderr);
      const { summary } = json(d.stdout);
      assert.strictEqual(summary.error.code, 'ERR_CRIU_NO_IMAGES');
      assert.match(summary.killed[c.pid], /^killed \(SIGKILL\)/);
      assert.ok(await gone(c.pid, 5000), 'the restored task is gone, not waiting on its first fault');
      assert.notStrictEqual(r.status, 0, 'criu restore reports the task it lost');
    });
  });
});

describeNative('criu-lazy-pages against a stand-in for criu restore (fake_restore.c): the protocol and its bad input', { features: ['EVENT_FORK', 'EVENT_REMAP', 'EVENT_REMOVE', 'EVENT_UNMAP'] }, function () {
  this.timeout(60000);
  const os = require('os');
  const { execFileSync, spawn } = require('child_process');
  const { writeTaskImages } = require('../fixtures/criu/images');
  const { pattern, requirePrivileged } = require('../helpers');
  let dir;
  let bin;
  before(function () {
    requirePrivileged(this, 'a userfaultfd with EVENT_FORK, as criu restore opens it,', 'ptrace');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-criu-'));
    bin = path.join(dir, 'fake_restore');
    try {
      execFileSync('cc', ['-O2', '-Wall', '-o', bin, path.join(__dirname, '../fixtures/criu/fake_restore.c')], { stdio: 'pipe' });
    } catch (e) {
      skipWithReason(this, `cannot build the fixture with cc (${e.message.split('\n')[0]})`);
    }
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The stand-in in `mode`, its images written for it (its pages: `data`), the daemon started on
   * them; resolves with both ends: { client: { code, signal, stdout }, daemon }.
   */
  async function run(mode, name) {
    const work = path.join(dir, name);
    fs.mkdirSync(work);
    const sock = path.join(work, 'lazy-pages.socket');
    const child = spawn(bin, [sock, mode], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    child.stdout.on('data', (d) => { stdout += d; });
    const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout })));
    const killer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 30000);
    try {
      for (const deadline = Date.now() + 10000; !/^pid /m.test(stdout);) {
        if (Date.now() > deadline) throw new Error(`the stand-in did not start: ${stdout}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const [, pid, addr, pages] = /^pid (\d+) addr ([0-9a-f]+) pages (\d+)$/m.exec(stdout);
      const data = pattern(Number(pages) * require('../../dist').constants.pageSize, 31);
      writeTaskImages(work, Number(pid), BigInt(`0x${addr}`), data);
      const daemon = startProcess(process.execPath, [BIN, 'criu-lazy-pages', '-D', work, '--json'], { timeoutMs: 30000 });
      while (!fs.existsSync(sock)) await new Promise((r) => setTimeout(r, 10));
      child.stdin.write('go\n');
      const d = await daemon.done;
      // A task the daemon let go reads its pages and prints their sum; one it killed never does.
      for (const deadline = Date.now() + 5000; !/^sum /m.test(stdout) && Date.now() < deadline && child.exitCode === null && child.signalCode === null;) {
        await new Promise((r) => setTimeout(r, 10));
      }
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      return { client: await exited, daemon: d, pid: Number(pid), data };
    } finally {
      clearTimeout(killer);
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  function sum(bytes) {
    let h = 1469598103934665603n;
    for (let i = 0; i < bytes.length; i += 8) h = ((h ^ bytes.readBigUInt64LE(i)) * 1099511628211n) & 0xffffffffffffffffn;
    return h.toString(16).padStart(16, '0');
  }

  it('serves the pages of its images and exits 0 once every page is in', async function () {
    const { client, daemon, data } = await run('good', 'good');
    assert.deepStrictEqual([daemon.code, daemon.timedOut], [0, false], daemon.stderr);
    assert.strictEqual(/^sum ([0-9a-f]{16})$/m.exec(client.stdout)[1], sum(data));
    assert.strictEqual(json(daemon.stdout).tasks[0].lazyPages, data.length / require('../../dist').constants.pageSize);
  });

  /**
   * The daemon failed with `code` and killed the task. `read`: what the task may have printed
   * before: 'nothing' (it never ran on with a page missing), 'served' (its pages, served before
   * the bad message came), 'zeros' (the stand-in closed its only uffd itself: see notuffd).
   */
  function assertKilled(result, code, read) {
    try {
      checkKilled(result, code, read);
    } catch (e) {
      e.message += `\ndaemon: ${result.daemon.stderr}${result.daemon.stdout}\ntask: ${result.client.stdout} (${result.client.signal})`;
      throw e;
    }
  }
  function checkKilled({ client, daemon, pid, data }, code, read) {
    assert.deepStrictEqual([daemon.code, daemon.timedOut], [1, false], daemon.stderr);
    const { summary } = json(daemon.stdout);
    assert.strictEqual(summary.error.code, code, daemon.stderr);
    assert.match(daemon.stderr, new RegExp(`${code}: `));
    assert.match(summary.killed[pid], /^killed \(SIGKILL\)|^gone already/);
    assert.strictEqual(client.signal, 'SIGKILL');
    const printed = /^sum ([0-9a-f]{16})$/m.exec(client.stdout);
    if (read === 'nothing') assert.strictEqual(printed, null, 'it never ran on with pages missing');
    if (read === 'served' && printed) assert.strictEqual(printed[1], sum(data), 'what it read was its pages, never zeros');
    if (read === 'zeros' && printed) assert.strictEqual(printed[1], sum(Buffer.alloc(data.length)));
  }

  it('an unknown message after a task: ERR_CRIU_PROTOCOL, the task killed', async function () {
    assertKilled(await run('unknown', 'unknown'), 'ERR_CRIU_PROTOCOL', 'served');
  });

  it('criu restore hanging up before "FTSR": ERR_CRIU_PROTOCOL, the task killed', async function () {
    assertKilled(await run('hangup', 'hangup'), 'ERR_CRIU_PROTOCOL', 'served');
  });

  it('a userfaultfd without the events CRIU asks for: ERR_CRIU_UFFD_FEATURES, the task killed before it reads a page', async function () {
    assertKilled(await run('nofeatures', 'nofeatures'), 'ERR_CRIU_UFFD_FEATURES', 'nothing');
  });

  it('a pipe instead of a userfaultfd: ERR_CRIU_NOT_UFFD, the task killed', async function () {
    // The stand-in closed its uffd after sending the pipe: its pages read as zeros at once, as
    // they would for a task whose criu restore sent no uffd. The daemon kills it anyway.
    assertKilled(await run('notuffd', 'notuffd'), 'ERR_CRIU_NOT_UFFD', 'zeros');
  });

  it('a pid that is not criu restore\'s nor a descendant\'s (pid 1) is never killed: the task then reads zeros', async function () {
    // The limit of the kill: a pid from another pid namespace cannot be told from a stranger.
    const { client, daemon } = await run('nopid', 'nopid');
    assert.deepStrictEqual([daemon.code, daemon.timedOut], [1, false], daemon.stderr);
    const { summary } = json(daemon.stdout);
    assert.strictEqual(summary.error.code, 'ERR_CRIU_NO_IMAGES');
    assert.match(summary.killed[1], /^not killed/);
    assert.strictEqual(/^sum ([0-9a-f]{16})$/m.exec(client.stdout)[1], sum(Buffer.alloc(16 * require('../../dist').constants.pageSize)),
      'its uffd closed with the daemon: its missing pages read as zeros');
  });
});

describeNative('criu-lazy-pages: its command line', function () {
  const run = (args) => startProcess(process.execPath, [BIN, 'criu-lazy-pages', ...args], { timeoutMs: 20000 }).done;

  it('an unknown option, or no -D: a usage error naming the fix, exit status 2', async function () {
    const a = await run(['-D', '/tmp', '--prefech', 'x']);
    assert.strictEqual(a.code, 2, a.stderr);
    assert.match(a.stderr, /unknown option '--prefech'; did you mean '--prefetch'\?/);
    const b = await run([]);
    assert.strictEqual(b.code, 2, b.stderr);
    assert.match(b.stderr, /-D <images-dir> is required/);
  });

  it('images that are not there: ERR_CRIU_IMAGE_MISSING, exit status 1, and no socket made', async function () {
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'uffd-criu-empty-'));
    try {
      const r = await run(['-D', dir, '--json']);
      assert.strictEqual(r.code, 1, r.stderr);
      assert.match(r.stderr, /criu-lazy-pages: ERR_CRIU_IMAGE_MISSING: .*pstree\.img is missing/);
      assert.strictEqual(json(r.stdout).summary.error.code, 'ERR_CRIU_IMAGE_MISSING');
      assert.deepStrictEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('criu lazy-pages\' own options: -v4 accepted; --status-fd not open: a usage error; -d on missing images: exit 1, no pidfile', async function () {
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'uffd-criu-empty-'));
    try {
      const a = await run(['-D', dir, '-v4', '--status-fd', '97']);
      assert.strictEqual(a.code, 2, a.stderr);
      assert.match(a.stderr, /--status-fd 97 is not open/);
      const pidfile = path.join(dir, 'pid');
      const b = await run(['-D', dir, '-v4', '-d', '--pidfile', pidfile, '-o', 'lazy.log']);
      assert.strictEqual(b.code, 1, b.stderr);
      assert.match(b.stderr, /the daemon ended before it listened \(exit status 1\)/);
      assert.strictEqual(fs.existsSync(pidfile), false);
      assert.match(fs.readFileSync(path.join(dir, 'lazy.log'), 'utf8'), /ERR_CRIU_IMAGE_MISSING: .*pstree\.img is missing/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('help criu-lazy-pages prints its usage', async function () {
    const r = await startProcess(process.execPath, [BIN, 'help', 'criu-lazy-pages'], { timeoutMs: 20000 }).done;
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: userfaultfd criu-lazy-pages -D <images-dir>/);
  });
});
