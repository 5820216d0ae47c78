// Leaks: after many cycles the process's fds (/proc/self/fd), threads (/proc/self/task) and
// mappings (/proc/self/maps) are back where they started. Each kind runs in its own child
// (leak-child.js, with --expose-gc) after a warm-up (libuv's pool threads start lazily).
const assert = require('assert');
const path = require('path');
const { runChild, describeNative, scaled } = require('../helpers');

async function leakRun(kind, cycles) {
  const r = await runChild(path.join(__dirname, 'leak-child.js'), {
    isFile: true, args: [kind, String(cycles)], timeoutMs: 60000,
  });
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, info);
  assert.strictEqual(r.code, 0, info);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  console.log(`      ${kind} x${cycles}: fds ${result.before.fds}->${result.after.fds}, threads ` +
    `${result.before.threads}->${result.after.threads}, mappings ${result.before.maps}->${result.after.maps} ` +
    `(mmap area ${result.before.mmapArea}->${result.after.mmapArea}; the rest is V8 heap pages)`);
  return result;
}

describeNative('reliability: leaks', function () {
  this.timeout(scaled(90000));

  it('1,000 cycles of open -> register -> fault -> close leave no fd, thread or mapping behind', async () => {
    const { before, after } = await leakRun('faults', 1000);
    assert.strictEqual(after.fds, before.fds, 'fds');
    assert.strictEqual(after.threads, before.threads, 'threads');
    // glibc keeps the stacks of joined threads for reuse (up to 40 MiB: four or five 8 MiB
    // reader stacks); a leak would grow with the 1,000 cycles, not stay within that cache.
    assert.ok(after.mmapArea - before.mmapArea <= 8, `mappings ${before.mmapArea} -> ${after.mmapArea}`);
  });

  it('1,000 Regions mapped and unmapped, or dropped for GC, leave no fd or mapping behind', async () => {
    const { before, after } = await leakRun('regions', 1000);
    assert.strictEqual(after.fds, before.fds, 'fds (memfds of shared regions)');
    assert.strictEqual(after.threads, before.threads, 'threads');
    assert.strictEqual(after.mmapArea, before.mmapArea, 'mappings');
    assert.strictEqual(after.memfds, 0, 'memfd mappings');
  });

  it('100 Workers that adopt a uffd (fromFd), start a reader and are terminated leave nothing behind', async () => {
    const { before, after } = await leakRun('workers', 100);
    assert.strictEqual(after.fds, before.fds, 'fds: each Worker closed its duplicate at env cleanup');
    assert.strictEqual(after.threads, before.threads, 'threads: each reader thread was joined');
    // glibc may add a malloc arena or two (2 mappings each) as threads come and go; a leak per
    // Worker would show as 100 or more.
    assert.ok(after.mmapArea - before.mmapArea <= 8, `mappings grew by ${after.mmapArea - before.mmapArea}`);
  });
});
