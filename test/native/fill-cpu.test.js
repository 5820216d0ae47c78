'use strict';
// The background fill leaves a CPU it shares with the program it fills (native/reader/
// cpu_sharing.h): it narrows its own affinity mask for a moment to move. What a user sees of that
// is checked here, in children: the bytes, and every thread's mask as it was, with two CPUs
// allowed and with one (where it never moves). Whether a move happened depends on the scheduler,
// so it is not asserted; bench/criu-restore.js shows its effect.
const assert = require('assert');
const path = require('path');
const os = require('os');
const { describeNative, runProcess, scaled, skipWithReason } = require('../helpers');

const ROOT = path.join(__dirname, '../..');
const CHILD = `
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const { Userfaultfd, Region, PageSource } = require('./dist');
  const masks = () => fs.readdirSync('/proc/self/task').map((t) => {
    try { return /Cpus_allowed_list:\\s*(\\S+)/.exec(fs.readFileSync('/proc/self/task/' + t + '/status', 'utf8'))[1]; } catch { return null; }
  }).filter((m) => m !== null);
  (async () => {
    const before = [...new Set(masks())];
    const u = Userfaultfd.open();
    const PAGE = u.pageSize;
    const pages = (16 << 20) / PAGE; // 16 MiB, whatever the page size
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-fill-cpu-'));
    const file = path.join(dir, 'pages.img');
    const data = Buffer.alloc(pages * PAGE);
    for (let i = 0; i < data.length; i += 8) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(file, data);
    const r = Region.map(pages * PAGE);
    u.serve(r, PageSource.file(file));
    // The program reads in order while the fill runs: it catches up with the fill, as a restore
    // that reads its memory in order does.
    const [filled, read] = await Promise.all([u.fill(), r.read(0, pages * PAGE)]);
    const after = [...new Set(masks())];
    const same = read.equals(data);
    u.close();
    r.unmap();
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(JSON.stringify({ before, after, same, filledPages: filled.pages }));
  })().catch((e) => { console.log(JSON.stringify({ failed: String(e && e.stack) })); });`;

/** The child under `taskset -c cpus`: what it printed. */
async function run(cpus) {
  const r = await runProcess('taskset', ['-c', cpus, process.execPath, '-e', CHILD], { timeoutMs: 30000, cwd: ROOT });
  assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.strictEqual(out.failed, undefined, out.failed);
  return out;
}

describeNative('fill: leaving a shared CPU', function () {
  this.timeout(scaled(60000));

  it('every byte read, every thread left with the mask it had (two CPUs allowed)', async function () {
    if (os.availableParallelism() < 2) return skipWithReason(this, 'one CPU here: nothing to move to');
    const out = await run('0,1');
    assert.strictEqual(out.same, true);
    assert.deepStrictEqual(out.before, ['0-1']);
    assert.deepStrictEqual(out.after, ['0-1']);
  });

  it('one CPU allowed: the same, and the fill never asks for another', async () => {
    const out = await run('0');
    assert.strictEqual(out.same, true);
    assert.deepStrictEqual(out.before, ['0']);
    assert.deepStrictEqual(out.after, ['0']);
  });
});
