'use strict';
// CRIU lazy restore served by `userfaultfd criu-lazy-pages` against CRIU's own `criu lazy-pages`
// (the baseline, measured in the same run, from the same images), with CRIU 4.1.1 in a trixie
// chroot (test/fixtures/criu/chroot.js). A program holding 64 MiB or 1 GiB is checkpointed
// once per variant and restored --runs times with each daemon, in random order:
//   seq      it reads all of its memory in order (read-ahead's case) as soon as it runs;
//   scatter  it reads one page in 16 in a scattered order (one fault per page: the hard case).
// Times from the start of `criu restore`: the program's first output ("resumed", printed the
// moment it runs), its work done (its "time" line: CLOCK_REALTIME, printed by the program), and
// every page in (the daemon exits). Faults: ours from its --json summary, CRIU's the "#PF"
// lines of its -v4 log (as ../shared/tools/criu-lazy-demo.sh counts them). Unpinned, and pinned:
// the program, criu restore and the daemon all on CPU 0 (taskset), one CPU as on a small VM.
// Root only; needs the chroot (built on first use, like the tests).
// Usage: node bench/criu-restore.js [--runs 3] [--sizes 64,1024] [--workloads seq,scatter]
//        [--pinned both|yes|no]
// Prints a markdown section and writes it to bench/results-criu-restore.md.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { prepare, Chroot, checkpoint, waitForFile } = require('../test/fixtures/criu/chroot');

const BIN = path.join(__dirname, '../bin/userfaultfd.js');
const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '3' },
  sizes: { type: 'string', default: '64,1024' },
  workloads: { type: 'string', default: 'seq,scatter' },
  pinned: { type: 'string', default: 'both' },
} });
const RUNS = Number(values.runs);
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
const shuffle = (a) => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};

function kill(pid) {
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/** Resolves with { code, stdout } when `child` exits; `at` is when (ns, realtime). */
function exited(child) {
  let stdout = '';
  if (child.stdout) child.stdout.on('data', (d) => { stdout += d; });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: nowNs(), stdout })));
}

/** The daemon's log, for an error message. */
function daemonLog(c, daemon) {
  try {
    return fs.readFileSync(path.join(c.hostImg, daemon === 'ours' ? 'lazy-ours.log' : 'lazy.log'), 'utf8').slice(-600);
  } catch {
    return '';
  }
}

/** One restore of checkpoint `c` served by `daemon` ('ours' | 'criu'). */
async function trial(chroot, c, daemon, pinned) {
  const pin = (argv) => (pinned ? ['taskset', '-c', '0', ...argv] : argv);
  const sock = path.join(c.hostImg, 'lazy-pages.socket');
  for (const f of ['lazy-pages.socket', 'lazy.log', 'lazy-ours.log']) fs.rmSync(path.join(c.hostImg, f), { force: true });
  const log = fs.readFileSync(c.hostLog, 'utf8');
  let d;
  let errors = '';
  if (daemon === 'ours') {
    // Its log to a file, as CRIU's daemon below: a line on a pipe would wake this process
    // during the restore, for one daemon only.
    const [cmd, ...args] = pin([process.execPath, BIN, 'criu-lazy-pages', '-D', c.hostImg, '--json', '-o', 'lazy-ours.log']);
    d = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    d.stderr.on('data', (x) => { errors += x; });
  } else {
    const [cmd, ...args] = pin(chroot.argv(['criu', 'lazy-pages', '-D', c.img, '-v4', '-o', 'lazy.log']));
    d = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  }
  const daemonDone = exited(d);
  while (!fs.existsSync(sock)) await new Promise((r) => setTimeout(r, 5));
  fs.writeFileSync(c.hostGo, '');
  const [cmd, ...args] = pin(chroot.argv(['criu', 'restore', '-D', c.img, '--lazy-pages', '-d', '-o', 'restore.log']));
  const t0 = nowNs();
  const restore = exited(spawn(cmd, args, { stdio: 'ignore' }));
  const r = await restore;
  if (r.code !== 0) {
    kill(d.pid);
    throw new Error(`${daemon}: criu restore failed (${r.code}): ${fs.readFileSync(path.join(c.hostImg, 'restore.log'), 'utf8').slice(-600)}` +
      `\n${daemon}: ${errors}${daemonLog(c, daemon)}`);
  }
  const dd = await daemonDone;
  const out = (await waitForFile(c.hostLog, (t) => /^time \d+$/m.test(t.slice(log.length)), 120000, `the program's work (after ${log.length} bytes)`)).slice(log.length);
  kill(c.pid);
  // Restored again next with the same pid: wait until it is reaped, not only dead.
  for (let i = 0; i < 1000 && fs.existsSync(`/proc/${c.pid}`); i++) await new Promise((res) => setTimeout(res, 10));
  fs.rmSync(c.hostGo, { force: true });
  if (r.code !== 0 || dd.code !== 0) throw new Error(`${daemon}: restore ${r.code}, daemon ${dd.code}: ${errors}${daemonLog(c, daemon)}`);
  const post = /^post ([0-9a-f]{16})$/m.exec(out);
  if (!post || post[1] !== c.pre) throw new Error(`${daemon}: the restored program printed ${post && post[1]}, not ${c.pre}`);
  const ms = (t) => Number(BigInt(t) - t0) / 1e6;
  let faults;
  if (daemon === 'ours') {
    faults = JSON.parse(dd.stdout.trim().split('\n').find((l) => l.includes('"summary"'))).faults;
  } else {
    faults = (fs.readFileSync(path.join(c.hostImg, 'lazy.log'), 'utf8').match(/#PF/g) || []).length;
  }
  return {
    first: ms(/^resumed (\d+)$/m.exec(out)[1]), work: ms(/^time (\d+)$/m.exec(out)[1]), all: ms(dd.at), faults,
  };
}

async function main() {
  const why = prepare();
  if (why) {
    console.error(`criu-restore benchmark skipped: ${why}`);
    process.exit(2);
  }
  const chroot = new Chroot().start();
  const rows = [];
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const loadBefore = load();
  try {
    const prog = chroot.compile();
    const sizes = values.sizes.split(',').map(Number);
    const pins = values.pinned === 'both' ? [false, true] : [values.pinned === 'yes'];
    const variants = [];
    for (const mib of sizes) for (const workload of values.workloads.split(',')) for (const pinned of pins) variants.push({ mib, workload, pinned });
    for (const v of shuffle(variants)) {
      // The original runs pinned too: CRIU restores its affinity.
      const c = await checkpoint(chroot, prog, v.workload, v.mib, `bench-${v.workload}-${v.mib}`, v.pinned ? ['taskset', '-c', '0'] : []);
      const got = { ours: [], criu: [] };
      for (let i = 0; i < RUNS; i++) {
        for (const daemon of shuffle(['ours', 'criu'])) got[daemon].push(await trial(chroot, c, daemon, v.pinned));
      }
      const m = (who, k) => median(got[who].map((x) => x[k]));
      rows.push({ ...v, ours: { first: m('ours', 'first'), work: m('ours', 'work'), all: m('ours', 'all'), faults: m('ours', 'faults') },
        criu: { first: m('criu', 'first'), work: m('criu', 'work'), all: m('criu', 'all'), faults: m('criu', 'faults') } });
      fs.rmSync(c.hostDir, { recursive: true, force: true });
      process.stderr.write(`${v.workload} ${v.mib} MiB ${v.pinned ? 'pinned' : 'unpinned'}: done\n`);
    }
  } finally {
    chroot.stop();
  }
  rows.sort((a, b) => a.mib - b.mib || a.workload.localeCompare(b.workload) || Number(a.pinned) - Number(b.pinned));
  const f = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  const r = (a, b) => (a / b).toFixed(2);
  const lines = [
    '## CRIU lazy restore: userfaultfd criu-lazy-pages vs criu lazy-pages (CRIU 4.1.1)',
    '',
    `Median of ${RUNS} runs per daemon, daemons in random order, times in ms from the start of \`criu restore\`; ` +
      'ratio = ours / CRIU\'s (below 1: faster). First output: the restored program\'s first line, printed the moment ' +
      'it runs; work: it has read its pages (seq: all in order; scatter: 1 in 16, scattered); all in: the daemon ' +
      'exited, every page in. Faults: every missing-page fault the daemon read.',
    '',
    `${os.cpus().length} CPUs (${os.cpus()[0].model}), Linux ${os.release()}, load average ${loadBefore} before, ${load()} after.`,
    '',
    '| workload | size | CPUs | first output: ours / CRIU (ratio) | work: ours / CRIU (ratio) | all in: ours / CRIU (ratio) | faults: ours / CRIU |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const x of rows) {
    const o = x.ours;
    const c = x.criu;
    lines.push(`| ${x.workload} | ${x.mib >= 1024 ? `${x.mib / 1024} GiB` : `${x.mib} MiB`} | ${x.pinned ? 'pinned: 1' : 'unpinned'} | ` +
      `${f(o.first)} / ${f(c.first)} (${r(o.first, c.first)}) | ${f(o.work)} / ${f(c.work)} (${r(o.work, c.work)}) | ` +
      `${f(o.all)} / ${f(c.all)} (${r(o.all, c.all)}) | ${o.faults} / ${c.faults} |`);
  }
  const text = `${lines.join('\n')}\n`;
  process.stdout.write(text);
  fs.writeFileSync(path.join(__dirname, 'results-criu-restore.md'), text);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
