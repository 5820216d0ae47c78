// Leaks: after many cycles the process's fds (/proc/self/fd), threads (/proc/self/task) and
// mappings (/proc/self/maps) are back where they started. Each kind runs in its own child
// (leak-child.js, with --expose-gc) after a warm-up (libuv's pool threads start lazily).
const assert = require('assert');
const path = require('path');
const { runChild, describeNative, scaled, PAGE } = require('../helpers');

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

/**
 * How many mappings the mmap area gained, and what a failed check shows: the mappings added and
 * gone between the snapshots. A malloc arena that grew in place is the same one: its used part
 * keeps its start, its reserved (---p) rest its end. Where the program break was blocked
 * (leak-child.js, breakBlockedBy), glibc's main arena grew by anonymous pieces of its 128 KiB top
 * pad and a little more: those are counted apart, and named.
 */
function mmapGrowth({ before, after }) {
  const fields = (l) => {
    const [range, perms, , , , file = ''] = l.split(/\s+/);
    const [start, end] = range.split('-');
    return { start, end, perms, file, size: parseInt(end, 16) - parseInt(start, 16) };
  };
  const key = (l) => { const f = fields(l); return `${f.perms === '---p' ? f.end : f.start} ${f.perms} ${f.file}`; };
  const was = new Set(before.mmapLines.map(key));
  const is = new Set(after.mmapLines.map(key));
  const added = after.mmapLines.filter((l) => !was.has(key(l)));
  const gone = before.mmapLines.filter((l) => !is.has(key(l)));
  const mainArena = after.breakBlockedBy === null ? [] : added.map(fields).filter((f) =>
    f.perms === 'rw-p' && f.file === '' && f.size >= 0x20000 + PAGE && f.size < 1 << 20);
  if (mainArena.length > 0) {
    console.log(`      (brk(2) blocked by "${after.breakBlockedBy.trim()}": glibc's main arena grew by ` +
      `${mainArena.length} mmap(2) pieces, counted apart)`);
  }
  const growth = after.mmapArea - before.mmapArea - mainArena.length;
  const message = `mappings ${before.mmapArea} -> ${after.mmapArea} (${mainArena.length} of glibc's main arena)\n` +
    `added:\n${added.slice(0, 60).join('\n')}\ngone:\n${gone.slice(0, 60).join('\n')}`;
  return { growth, message };
}

describeNative('reliability: leaks', function () {
  this.timeout(scaled(90000));

  it('1,000 cycles of open -> register -> fault -> close leave no fd, thread or mapping behind', async () => {
    const result = await leakRun('faults', 1000);
    const { before, after } = result;
    assert.strictEqual(after.fds, before.fds, 'fds');
    assert.strictEqual(after.threads, before.threads, 'threads');
    // glibc keeps the stacks of joined threads for reuse (up to 40 MiB: four or five 8 MiB
    // reader stacks); a leak would grow with the 1,000 cycles, not stay within that cache.
    const { growth, message } = mmapGrowth(result);
    assert.ok(growth <= 8, message);
  });

  it('1,000 Regions mapped and unmapped, or dropped for GC, leave no fd or mapping behind', async () => {
    const result = await leakRun('regions', 1000);
    const { before, after } = result;
    assert.strictEqual(after.fds, before.fds, 'fds (memfds of shared regions)');
    assert.strictEqual(after.threads, before.threads, 'threads');
    const { growth, message } = mmapGrowth(result);
    assert.strictEqual(growth, 0, message);
    assert.strictEqual(after.memfds, 0, 'memfd mappings');
  });

  it('100 Workers that adopt a uffd (fromFd), start a reader and are terminated leave nothing behind', async () => {
    const result = await leakRun('workers', 100);
    const { before, after } = result;
    assert.strictEqual(after.fds, before.fds, 'fds: each Worker closed its duplicate at env cleanup');
    assert.strictEqual(after.threads, before.threads, 'threads: each reader thread was joined');
    // glibc may add a malloc arena or two (2 mappings each) as threads come and go; a leak per
    // Worker would show as 100 or more.
    const { growth, message } = mmapGrowth(result);
    assert.ok(growth <= 8, message);
  });
});
