// `npm start`: examples/lazy-file-demo.js, run in a child with a smaller file.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { runChild, describeNative } = require('../helpers');

const DEMO = path.join(__dirname, '..', '..', 'examples', 'lazy-file-demo.js');

describeNative('the lazy-file demo', function () {

  it('generates a 16 MiB file, verifies every touched byte, prints the table, exits 0, cleans up', async () => {
    const before = new Set(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('uffd-demo-')));
    const r = await runChild(DEMO, { isFile: true, args: ['--size', '16MiB', '--random', '512'], timeoutMs: 60000 });
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.strictEqual(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.strictEqual(r.signal, null);
    for (const row of ['fs.readFile, whole file', 'serve(): time to first byte', 'touched', 'loaded (copied by the uffd)',
      'resident in the region', 'faults / copies / wakeups', 'fault latency p50 / p99']) {
      assert.ok(r.stdout.includes(`| ${row}`), `row ${row}\n${r.stdout}`);
    }
    assert.match(r.stdout, /\(0 mismatches\) \| \d+ \(0 mismatches\) \|/);
    assert.match(r.stdout, /all touched bytes match the file/);
    assert.match(r.stdout, /data\.bin \(16\.0 MiB\)/);
    // The second run, beside the first: it prefetched what the first recorded.
    assert.match(r.stdout, /1st run: record \| +2nd run: prefetch \|/);
    const row = (name) => r.stdout.split('\n').find((l) => l.startsWith(`| ${name}`)).split('|').map((c) => c.trim());
    const [, , firstDemand, secondDemand] = row('demand faults');
    assert.ok(Number(firstDemand) > 0, r.stdout);
    const [, , , prefetched] = row('prefetched pages');
    assert.ok(Number(prefetched.split(' ')[0]) > 0, r.stdout);
    assert.ok(Number(secondDemand) < Number(firstDemand), r.stdout);
    assert.match(r.stderr, /random \(2nd\)/);
    assert.match(r.stderr, /sequential/); // the progress bar (plain lines: stderr is not a TTY)
    const after = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('uffd-demo-') && !before.has(n));
    assert.deepStrictEqual(after, [], 'the temporary folder was removed');
  });

  it('serves a file given on the command line, whose size is not a page multiple', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-demo-test-'));
    try {
      const file = path.join(dir, 'given.bin');
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 1234);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + (i >> 12)) & 0xff;
      fs.writeFileSync(file, bytes);
      const r = await runChild(DEMO, { isFile: true, args: [file, '--random', '100', '--sequential', '100'], timeoutMs: 60000 });
      assert.strictEqual(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /given\.bin/);
      assert.match(r.stdout, /\(0 mismatches\)/);
      assert.ok(fs.existsSync(file), 'a given file is never deleted');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad arguments with exit code 2', async () => {
    const r = await runChild(DEMO, { isFile: true, args: ['--size', 'lots'], timeoutMs: 30000 });
    assert.strictEqual(r.code, 2);
    assert.match(r.stderr, /--size/);
  });
});
