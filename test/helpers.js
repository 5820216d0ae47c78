// Shared test helpers: the backend matrix, child processes, byte patterns.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { probe, constants } = require('../dist');

const nativeProbe = probe({ backend: 'native' });
const simulatorProbe = (() => {
  try { return probe({ backend: 'simulator' }); } catch (e) { return { available: false, reason: e.message }; }
})();
/**
 * The base page of this kernel (both backends use it): 4 KiB on x86-64, 4, 16 or 64 KiB on
 * arm64. Never assume 4096: a length or offset in a test is a multiple of PAGE.
 */
const PAGE = constants.pageSize;
/** A page-aligned address nothing is mapped at: the first page above 0, below vm.mmap_min_addr. */
const NO_MAPPING = BigInt(PAGE);
/** The kernel's default huge page size (a hugetlb Region's page): 2 MiB over 4 KiB pages, 32 MiB over 16 KiB. */
const HUGE = nativeProbe.available ? nativeProbe.hugePageSize : simulatorProbe.hugePageSize;
/** Deadlines: `scaled(ms)` is a native machine's `ms` on this one (UFFD_TEST_TIME_SCALE, time-scale.js). */
const { timeScale: TIME_SCALE, scaled } = require('./time-scale');

/** The backends a conformance case runs on: both on Linux, the simulator elsewhere. */
function backends() {
  const list = [];
  if (nativeProbe.available) list.push('native');
  if (simulatorProbe.available) list.push('simulator');
  return list;
}

/**
 * The backends describeBackends() runs: both, or those UFFD_TEST_BACKENDS lists (comma-separated).
 * The arm64 CI run says `native`: the simulator is TypeScript, the same on every architecture,
 * and the host's own run covers it (scripts/arm64-guest.sh prints what it left out).
 */
const BACKENDS = (() => {
  const asked = (process.env.UFFD_TEST_BACKENDS || 'native,simulator').split(',').map((b) => b.trim()).filter(Boolean);
  const unknown = asked.filter((b) => b !== 'native' && b !== 'simulator');
  if (unknown.length || !asked.length) throw new Error(`UFFD_TEST_BACKENDS: native and/or simulator, not '${process.env.UFFD_TEST_BACKENDS}'`);
  return asked;
})();

/**
 * describe() once per backend: `describeBackends('copy', (backend) => { it(...) })`.
 * The case body opens its uffd and regions with `{ backend }`.
 */
function describeBackends(title, body) {
  for (const backend of BACKENDS) {
    const p = backend === 'native' ? nativeProbe : simulatorProbe;
    describe(`${title} [${backend}]`, function () {
      if (!p.available) {
        it(`skipped: ${backend} backend unavailable (${p.reason})`, function () { skipWithReason(this, `${backend} backend unavailable (${p.reason})`); });
        return;
      }
      body(backend);
    });
  }
}

/**
 * A fresh uffd of `backend` for each test (handed to `use`), closed after it, with the regions
 * mapped through the returned `map(pages, options)` (or kept with `map.keep(region)`) unmapped
 * after it. Without `use` no uffd is opened for the test: it opens its own with `map.open()`.
 */
function perTestUffd(backend, use) {
  const { Userfaultfd, Region } = require('../dist');
  let uffds = [];
  let regions = [];
  beforeEach(() => {
    uffds = [];
    regions = [];
    if (use) use(map.open());
  });
  afterEach(() => {
    for (const u of uffds) u.close();
    for (const r of regions) r.unmap();
  });
  const map = (pages, options = {}) => map.keep(Region.map(pages * PAGE, { backend, ...options }));
  /** Closes `uffd` (one a test opened itself) after the test too. */
  map.closeAfter = (uffd) => {
    uffds.push(uffd);
    return uffd;
  };
  /** Opens a uffd of this backend (with `options`: features, say), closed after the test. */
  map.open = (options = {}) => map.closeAfter(Userfaultfd.open({ backend, ...options }));
  /** Unmaps `region` (an alias, say) after the test too. */
  map.keep = (region) => {
    regions.push(region);
    return region;
  };
  return map;
}

/** Skips the current test (or hook's tests), printing why: no test is skipped silently. */
function skipWithReason(ctx, reason) {
  console.log(`      skipped: ${reason}`);
  ctx.skip();
}

/** Skips the current test unless the native kernel reports `feature`; says why. */
function requireFeature(ctx, backend, feature) {
  const p = backend === 'simulator' ? simulatorProbe : nativeProbe;
  if (!p.features.includes(feature)) {
    skipWithReason(ctx, `the ${backend} backend lacks ${feature}`);
  }
}

/** Skips the current test where the backend `name` cannot serve here (a kernel-only step); says why. */
function requireBackend(ctx, name) {
  const p = name === 'simulator' ? simulatorProbe : nativeProbe;
  if (!p.available) skipWithReason(ctx, `the ${name} backend is unavailable here (${p.reason})`);
}

/** Skips the current test where `backend` has `feature`: a fallback for kernels without it; says why. */
function requireLacking(ctx, backend, feature, why) {
  const p = backend === 'simulator' ? simulatorProbe : nativeProbe;
  if (p.features.includes(feature)) skipWithReason(ctx, `the ${backend} backend has ${feature} (${why})`);
}

/** A page of bytes that says which page it is: byte i = (seed + page * 31 + i) & 0xff. */
function pattern(length, seed = 1) {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (seed + Math.floor(i / PAGE) * 31 + i) & 0xff;
  return b;
}

/** `count` of the page numbers 0..pages-1 in a fixed shuffled order (a working set of scattered single pages). */
function scatteredPages(pages, count, seed = 7) {
  const all = Array.from({ length: pages }, (_, i) => i);
  let x = seed;
  for (let i = pages - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % (i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count);
}

/**
 * Set by scripts/sanitize.sh (address|thread): the addon runs with a sanitizer runtime
 * preloaded into every process, which starts slower and adds a thread and fds of its own.
 */
const sanitizer = process.env.USERFAULTFD_SANITIZER || null;
/** How much longer a child may take under a sanitizer than without. */
const CHILD_TIME_FACTOR = sanitizer ? 4 : 1;

/** Skips what a sanitizer runtime makes meaningless (counted threads or fds, exact tids). */
function requireNoSanitizer(ctx, why) {
  if (sanitizer) skipWithReason(ctx, `${why}; under the ${sanitizer} sanitizer its runtime adds its own`);
}

/**
 * Spawns `file args` in its own process group, so that a timeout (SIGKILL after `timeoutMs`, scaled)
 * also kills what the child spawned. `pid` and `output()` (what it printed so far) are there at
 * once; `done` resolves with { code, signal, stdout, stderr, timedOut }.
 * `aliveFor: { after, ms }`, for a test that a process stays alive in some state: once its stdout
 * matches `after`, it is killed `ms` (scaled) later (timedOut: true), however long it took to
 * get there (a slow start under emulation does not eat the time it is watched).
 */
/**
 * The process groups startProcess started that have not closed yet. Each runs in its own group
 * (detached), so neither a Ctrl-C nor its parent's death reaches it, and its deadline is a
 * timer in this process: if the run ends first (mocha exits, or is stopped by SIGINT, SIGTERM
 * or SIGHUP), they are killed here. A run killed outright (SIGKILL) cannot do that: a child that
 * would wait forever must watch its parent itself (firecracker-handler --exit-with-parent).
 */
const runningGroups = new Set();

function killRunningGroups() {
  for (const pid of runningGroups) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone already */ }
  }
  runningGroups.clear();
}

process.on('exit', killRunningGroups);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, function stop() {
    killRunningGroups();
    // Then as if nobody had listened: this process ends by the signal.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function startProcess(file, args = [], { timeoutMs = 15000, env = {}, cwd = path.join(__dirname, '..'), inheritEnv = true, aliveFor = null } = {}) {
  timeoutMs = scaled(timeoutMs) * CHILD_TIME_FACTOR;
  const childEnv = inheritEnv ? { ...process.env, ...env } : env;
  const child = spawn(file, args, { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid !== undefined) runningGroups.add(child.pid);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const kill = () => {
    timedOut = true;
    try { process.kill(-child.pid, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
  };
  let timer = setTimeout(kill, timeoutMs);
  let watching = false;
  child.stdout.on('data', (d) => {
    stdout += d;
    if (aliveFor && !watching && aliveFor.after.test(stdout)) {
      watching = true;
      clearTimeout(timer);
      timer = setTimeout(kill, scaled(aliveFor.ms));
    }
  });
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer);
    runningGroups.delete(child.pid);
    resolve({ code, signal, stdout, stderr, timedOut });
  }));
  return { pid: child.pid, done, output: () => ({ stdout, stderr }) };
}

/** Whether process `pid` has exited (Linux: a zombie nobody has reaped yet has exited). */
function processExited(pid) {
  try {
    return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** startProcess, for its result only. */
function runProcess(file, args = [], options = {}) {
  return startProcess(file, args, options).done;
}

/** Runs `node -e source` (or a file) in a child, as runProcess does. */
function runChild(sourceOrFile, { timeoutMs = 15000, args = [], env = {}, isFile = false, aliveFor = null } = {}) {
  const argv = isFile ? [sourceOrFile, ...args] : ['-e', sourceOrFile, ...args];
  return runProcess(process.execPath, argv, { timeoutMs, env, aliveFor });
}

/** npm's own entry script, so that npm can run with a PATH that holds only node and sh. */
function findNpmCli() {
  const candidates = [path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')];
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const npm = path.join(dir, 'npm');
    if (fs.existsSync(npm)) {
      const real = fs.realpathSync(npm);
      candidates.unshift(real.endsWith('.js') ? real : path.join(path.dirname(real), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'));
    }
  }
  return candidates.find((c) => fs.existsSync(c)) || null;
}

/**
 * runChild for a child that prints one JSON line last: that object, once the child has exited
 * by itself with status 0 (a timeout, a signal or another status throws, with what it printed).
 * `ulimit` (bash's arguments, '-v 2000000' say) runs it under that resource limit.
 */
async function runChildJson(source, { ulimit, ...options } = {}) {
  const r = ulimit === undefined ? await runChild(source, options)
    : await runProcess('bash', ['-c', `ulimit ${ulimit} && exec "$0" -e "$1"`, process.execPath, source], options);
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  if (r.timedOut) throw new Error(`the child did not exit within its deadline: ${info}`);
  if (r.code !== 0 || r.signal !== null) throw new Error(`the child failed: ${info}`);
  const lines = r.stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    throw new Error(`the child printed no JSON last: ${info}`);
  }
}

/**
 * Runs `body` (the source of an async function body) in a child with a deadline, where `u` is a
 * uffd of `backend` (opened with the `open` options), `PAGE` its page size, `r` a region of
 * `pages` pages, `out` an object printed as JSON once the body has settled (its error, if any,
 * in `out.failed`), and Userfaultfd, Region and PageSource are in scope. Resolves with `out`.
 */
function runUffdChild(backend, body, { open = {}, pages = 4, timeoutMs = 15000 } = {}) {
  return runChildJson(`
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const u = Userfaultfd.open({ backend: '${backend}', ...${JSON.stringify(open)} });
    const PAGE = u.pageSize;
    const r = Region.map(${pages} * PAGE, { backend: '${backend}' });
    const out = {};
    (async () => { ${body} })().catch((e) => { out.failed = String(e && e.stack); }).finally(() => {
      u.close();
      r.unmap();
      console.log(JSON.stringify(out));
    });`, { timeoutMs });
}

/**
 * describe() for what only the kernel shows; "(native-only)" in the title, skipped elsewhere.
 * `describeNative(title, { features: ['POISON'] }, body)` also skips it, saying so, where the
 * kernel lacks one of `features`.
 */
function describeNative(title, options, body) {
  if (typeof options === 'function') [options, body] = [{}, options];
  const features = options.features || [];
  // A misspelt name would skip the block on every kernel.
  const unknown = features.filter((f) => !(f in require('../dist').constants.features));
  if (unknown.length > 0) throw new Error(`describeNative: unknown feature ${unknown.join(', ')}`);
  const lacking = features.filter((f) => !nativeProbe.features.includes(f));
  describe(`${title} (native-only)`, function () {
    if (!nativeProbe.available) {
      it(`skipped: ${nativeProbe.reason}`, function () { skipWithReason(this, `native backend unavailable (${nativeProbe.reason})`); });
      return;
    }
    if (lacking.length > 0) {
      it(`skipped: the kernel lacks ${lacking.join(', ')}`, function () { skipWithReason(this, `the kernel lacks ${lacking.join(', ')}`); });
      return;
    }
    body.call(this);
  });
}

/** The address of page `page` of a region, and a range of `count` pages from page `first`. */
const at = (region, page) => region.address + BigInt(page * PAGE);
const pages = (region, first, count) => ({ start: at(region, first), length: count * PAGE });

/**
 * Whether the running kernel is at least `major.minor` (os.release()), for a test whose
 * expectation changed with the kernel: it says so, and which it checked, the version or the
 * behaviour.
 */
function kernelAtLeast(major, minor) {
  const m = /^(\d+)\.(\d+)/.exec(require('os').release());
  return m !== null && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

/** Resolves after `ms`; never used to assert a duration, only to let events arrive. */
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once `count` threads of this process wait in the kernel on a userfault
 * (/proc/self/task/N/wchan is handle_userfault), for a test that needs a fault raised and
 * pending before its next step: a fixed delay is too short under a sanitizer or qemu. Rejects
 * after `timeoutMs`. Where wchan names no function (a kernel without it shows 0 for every
 * thread), it waits `fallbackMs` instead and says so.
 */
async function faultsWaiting(count = 1, { timeoutMs = scaled(10000), fallbackMs = scaled(200) } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const chans = fs.readdirSync('/proc/self/task').map((t) => {
      try { return fs.readFileSync(`/proc/self/task/${t}/wchan`, 'utf8'); } catch { return '0'; }
    });
    if (chans.filter((c) => c === 'handle_userfault').length >= count) return;
    if (chans.every((c) => c === '0')) {
      console.log(`      (no wchan on this kernel: waiting ${fallbackMs} ms for the fault instead)`);
      return delay(fallbackMs);
    }
    if (Date.now() > deadline) throw new Error(`no ${count} thread(s) waiting on a userfault after ${timeoutMs} ms: ${chans.join(', ')}`);
    await delay(1);
  }
}

/** Resolves with the next event of `type` on `emitter`. */
const nextEvent = (emitter, type) => new Promise((resolve) => emitter.once(type, resolve));

/** Resolves with the next `n` events of `type` on `emitter`. */
function nextEvents(emitter, type, n) {
  return new Promise((resolve) => {
    const seen = [];
    emitter.on(type, function on(e) {
      seen.push(e);
      if (seen.length === n) {
        emitter.off(type, on);
        resolve(seen);
      }
    });
  });
}

/** Resolves with the first `n` faults delivered to `uffd` (without answering them). */
const collectFaults = (uffd, n) => nextEvents(uffd, 'pagefault', n);

/**
 * Host-wide settings (sysctls such as vm.unprivileged_userfaultfd and vm.nr_hugepages, the ACL of
 * /dev/userfaultfd) are not namespaced: a test that changes one changes it for the whole machine
 * and every test run beside it. Such a test runs only when this variable is 1 (.ci/run sets it)
 * and restores what it changed; otherwise it skips, naming the variable.
 */
const HOST_SETTINGS_VAR = 'UFFD_TEST_HOST_SETTINGS';
const hostSettingsAllowed = () => process.env[HOST_SETTINGS_VAR] === '1';

/** Skips the current test (or hook's tests) unless it may change host-wide `what`; says how to allow it. */
function requireHostSettings(ctx, what) {
  if (!hostSettingsAllowed()) {
    skipWithReason(ctx, `it would change ${what}, a host-wide setting: set ${HOST_SETTINGS_VAR}=1 to allow it (.ci/run does)`);
  }
}

/** The huge page pool of the default size, from /proc/meminfo: { total, free, size (bytes) }. */
function hugePagePool() {
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
  return { total: field('HugePages_Total'), free: field('HugePages_Free'), size: field('Hugepagesize') * 1024 };
}

/**
 * Makes sure `count` huge pages of the default size are free. Where they already are, nothing
 * changes; else vm.nr_hugepages is raised, which needs root and UFFD_TEST_HOST_SETTINGS=1 (see
 * requireHostSettings). Skips, saying why, where it cannot. `size`: the huge page size the test
 * needs (skips where the default differs). Returns the undo, which puts back the value it found.
 */
function reserveHugePages(ctx, count, { size } = {}) {
  const pool = hugePagePool();
  if (size !== undefined && pool.size !== size) skipWithReason(ctx, `the default huge page size is ${pool.size} bytes, not ${size}`);
  if (pool.free >= count) return () => undefined;
  requireHostSettings(ctx, `vm.nr_hugepages (to find ${count} free huge pages; ${pool.free} are)`);
  const file = '/proc/sys/vm/nr_hugepages';
  const before = fs.readFileSync(file, 'utf8').trim();
  try {
    fs.writeFileSync(file, String(Number(before) + count));
  } catch (e) {
    skipWithReason(ctx, `only ${pool.free} of ${count} huge pages are free, and vm.nr_hugepages cannot be raised here (${e.code || e.message})`);
  }
  const undo = () => fs.writeFileSync(file, before);
  if (hugePagePool().free < count) {
    undo();
    skipWithReason(ctx, `vm.nr_hugepages was raised, but the kernel found no ${count} free huge pages`);
  }
  return undo;
}

/**
 * What this process may do, for tests that only a privileged process can run: 'root' (uid 0:
 * sysctls, hugetlb pools, namespaces), 'ptrace' (CAP_SYS_PTRACE: EVENT_FORK), 'uffd' (a full
 * userfaultfd, not UFFD_USER_MODE_ONLY: faults raised inside system calls).
 */
const privileges = (() => {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  let ptrace = false;
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    ptrace = capEff !== null && ((BigInt('0x' + capEff[1]) >> 19n) & 1n) === 1n;
  } catch { /* not Linux */ }
  const uffd = nativeProbe.available && !nativeProbe.userModeOnly;
  const uid = typeof process.getuid === 'function' ? process.getuid() : '?';
  const summary = `uid ${uid}, CAP_SYS_PTRACE ${ptrace ? 'yes' : 'no'}, ${nativeProbe.userModeOnly ? 'user-mode-only uffds' : uffd ? 'full uffds' : 'no kernel uffd'}`;
  return { root, ptrace, uffd, summary };
})();

const NEEDS = {
  root: 'root',
  ptrace: 'CAP_SYS_PTRACE',
  uffd: 'a full userfaultfd (CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd; not UFFD_USER_MODE_ONLY)',
};

/** Skips the current test (or hook's tests) unless this process has `need`; says what and why. */
function requirePrivileged(ctx, what, need = 'uffd') {
  if (!NEEDS[need]) throw new Error(`requirePrivileged: unknown need '${need}'`);
  if (!privileges[need]) skipWithReason(ctx, `${what} needs ${NEEDS[need]} (this process: ${privileges.summary})`);
}

module.exports = { processExited, requireNoSanitizer, sanitizer, HOST_SETTINGS_VAR, requireHostSettings, hugePagePool, reserveHugePages, findNpmCli, at, pages, PAGE, HUGE, NO_MAPPING, TIME_SCALE, scaled, kernelAtLeast, faultsWaiting, requirePrivileged, privileges, skipWithReason, perTestUffd, startProcess, runProcess, describeNative, backends, describeBackends, requireFeature, pattern, runChild, runChildJson, runUffdChild, delay, nativeProbe, simulatorProbe, requireLacking, requireBackend, nextEvent, collectFaults, scatteredPages, nextEvents };
