// The adversarial fuzzer: seeded steps (adversarial-fuzz-child.js), each in its own process with
// a deadline, doing on purpose what the API fuzzer's rules avoid. A hang, a crash, an uncoded
// error, a stray byte, a leaked fd or thread, or a legitimate peer left unserved is a finding.
//
//   FUZZ_SEEDS=10000 npx mocha test/reliability/adversarial-fuzz.test.js   (many seeds, locally)
//   FUZZ_SEED=1234 FUZZ_SEEDS=1 npx mocha test/reliability/adversarial-fuzz.test.js   (replay one)
//   node --expose-gc test/reliability/adversarial-fuzz-child.js --seed 1234 [--hostile PEER]
//
// FUZZ_SEED is the first seed (random unless set; printed), FUZZ_SEEDS how many (default 100:
// the budget of `npm test`), FUZZ_JOBS how many children at once (default 3).
const assert = require('assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { describeNative, scaled } = require('../helpers');
const { buildFixture } = require('../fixtures/c-fixtures');

const CHILD = path.join(__dirname, 'adversarial-fuzz-child.js');
const DEADLINE_MS = 8000;
// After SIGKILL, how long a child may take to be reaped before it counts as unkillable.
const REAP_MS = 3000;

/** Runs one step; resolves { seed, scenario, finding?, notes }. Never waits past its deadline. */
function step(seed, hostile) {
  return new Promise((resolve) => {
    const args = ['--expose-gc', CHILD, '--seed', String(seed)];
    if (hostile) args.push('--hostile', hostile);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    let timedOut = false;
    let settled = false;
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const finish = (code, signal, unkillable) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(reap);
      const ok = /^ADV OK (\S+) (.*)$/m.exec(out);
      const found = /^ADV FINDING (\S+) (\S+): (.*)$/m.exec(out);
      const started = /^ADV STEP (\S+)$/m.exec(out);
      const scenario = (found || ok || started || [])[1] || '?';
      let finding = null;
      if (found) finding = `${found[2]}: ${found[3]}`;
      else if (unkillable) finding = 'hang: still there after SIGKILL (a thread in D state)';
      else if (timedOut) {
        const noted = [...out.matchAll(/^ADV NOTE (.*)$/mg)].map((m) => m[1]).slice(-4).join(' ');
        finding = `hang: no exit within ${DEADLINE_MS} ms${ok ? ' (after the step itself finished)' : ''} [${noted}]`;
      }
      else if (signal) finding = `crash: ${signal} ${err.trim().split('\n').slice(-2).join(' | ')}`;
      else if (code !== 0 || !ok) finding = `exit ${code}: ${(err || out).trim().split('\n').slice(-3).join(' | ')}`;
      resolve({ seed, scenario, finding, notes: ok ? ok[2] : '' });
    };
    let reap;
    const deadline = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      reap = setTimeout(() => {
        // Unkillable (D state): let go of it, or its pipes would hold this process open.
        child.stdout.destroy();
        child.stderr.destroy();
        child.unref();
        finish(null, 'SIGKILL', true);
      }, REAP_MS);
    }, DEADLINE_MS);
    child.on('close', (code, signal) => finish(code, signal, false));
  });
}

describeNative('adversarial fuzzer', function () {
  let hostile = null;
  let dir;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-advfuzz-'));
    fs.chmodSync(dir, 0o755); // the hostile peer also runs as nobody
    try {
      hostile = buildFixture('hostile_peer', dir);
    } catch (e) {
      console.log(`      the flood, nobody and dying peers are left out: ${e.message}`);
    }
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hostile and unusual conditions: no hang, crash, uncoded error, stray byte, leak or unserved peer', async function () {
    const first = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 31) >>> 0;
    const count = Number(process.env.FUZZ_SEEDS || 100);
    const jobs = Number(process.env.FUZZ_JOBS || 3);
    this.timeout(scaled(Math.max(120000, count * (DEADLINE_MS + REAP_MS))));
    const results = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const seed = (first + next++) >>> 0;
        results.push(await step(seed, hostile));
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, count) }, worker));
    const byScenario = {};
    for (const r of results) {
      const s = (byScenario[r.scenario] ||= { runs: 0, findings: 0 });
      s.runs++;
      if (r.finding) s.findings++;
    }
    const findings = results.filter((r) => r.finding).sort((a, b) => a.seed - b.seed);
    console.log(`      seeds ${first}..${(first + count - 1) >>> 0} (${count}); per scenario: ` +
      Object.entries(byScenario).map(([k, v]) => `${k} ${v.runs}${v.findings ? ` (${v.findings} findings)` : ''}`).join(', '));
    const replay = (seed) => `FUZZ_SEED=${seed} FUZZ_SEEDS=1 npx mocha test/reliability/adversarial-fuzz.test.js`;
    const lines = findings.map((r) => `seed ${r.seed} [${r.scenario}] ${r.finding}\n        replay: ${replay(r.seed)}`);
    assert.strictEqual(findings.length, 0, `${findings.length} findings:\n${lines.join('\n')}`);
  });
});
