// Working-set files a hostile or careless peer put in place (issue 24), each case in a child with
// a deadline: a FIFO or a symlink to /dev/zero as the set to prefetch (only a regular file is
// read, its size capped before reading), a symlink planted at the old temporary name beside the
// set to record (the set is written through an exclusively created, unguessable file), and a
// checksummed file that claims an enormous range (refused before allocating by that range).
const assert = require('assert');
const crypto = require('crypto');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { describeBackends, runChildJson } = require('../helpers');

const DEADLINE = 15000;

/**
 * A child that serves 4 pages from `source` with `options` and prints the outcome and its peak
 * RSS (VmHWM: getrusage's maxRSS carries the parent's over exec).
 */
function serveWith(backend, options, { timeoutMs = DEADLINE } = {}) {
  return runChildJson(`
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const u = Userfaultfd.open({ backend: '${backend}' });
    const r = Region.map(4 * u.pageSize, { backend: '${backend}' });
    const out = {};
    try {
      u.serve(r, PageSource.buffer(Buffer.alloc(4 * u.pageSize, 7)), ${JSON.stringify(options)});
      out.served = true;
    } catch (e) {
      Object.assign(out, { code: e.code, syscall: e.syscall, message: e.message });
    }
    out.maxRssMiB = Math.round(Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024);
    u.close();
    r.unmap();
    console.log(JSON.stringify(out));`, { timeoutMs });
}

/** A checksummed working-set file (docs/working-sets.md) of one run, claiming `rangeLength`. */
function setFile(rangeLength, pageSize = 4096) {
  const b = Buffer.alloc(40 + 12 + 4);
  b.writeUInt32LE(0x53574655, 0);
  b.writeUInt16LE(1, 4);
  b.writeUInt16LE(40, 6);
  b.writeUInt32LE(pageSize, 8);
  b.writeUInt32LE(1, 12);
  b.writeBigUInt64LE(0n, 16);
  b.writeBigUInt64LE(BigInt(rangeLength), 24);
  b.writeUInt32LE(1, 32);
  b.writeUInt32LE(0, 40); // run: first page 0, one page, no flags
  b.writeUInt32LE(1, 44);
  b.writeUInt32LE(crypto.createHash('sha256').update(b.subarray(0, 52)).digest().readUInt32BE(0), 52);
  return b;
}

let dir;
/** A scratch folder for the enclosing describe(). */
function scratch() {
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-setfiles-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
}

describeBackends('reliability: hostile working-set files', (backend) => {
  scratch();
  beforeEach(function () { this.timeout(DEADLINE + 10000); });

  it('prefetch from a FIFO: a coded error at once (EINVAL, not a regular file), not a JS thread blocked in open(2)', async () => {
    const fifo = path.join(dir, `set-fifo-${backend}`);
    execFileSync('mkfifo', [fifo]);
    const out = await serveWith(backend, { prefetch: fifo });
    assert.deepStrictEqual([out.code, out.syscall], ['EINVAL', 'open'], JSON.stringify(out));
    assert.match(out.message, /not a regular file/);
  });

  it('prefetch from a symlink to /dev/zero: EINVAL at once, not memory growing without end', async () => {
    const link = path.join(dir, `set-zero-${backend}`);
    fs.symlinkSync('/dev/zero', link);
    // The deadline is short on purpose: before the fix this child read /dev/zero at ~300 MB/s.
    const out = await serveWith(backend, { prefetch: link }, { timeoutMs: 5000 });
    assert.deepStrictEqual([out.code, out.syscall], ['EINVAL', 'open'], JSON.stringify(out));
  });

  it('prefetch from a regular file larger than any set of the range: refused by its size before a byte is read', async () => {
    const big = path.join(dir, `set-big-${backend}`);
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 1536 * 1024 * 1024); // sparse: 1.5 GiB, none of it on disk
    const out = await serveWith(backend, { prefetch: big });
    assert.strictEqual(out.code, 'ERR_UFFD_WORKING_SET_CORRUPT', JSON.stringify(out));
    assert.ok(out.maxRssMiB < 400, `peak RSS ${out.maxRssMiB} MiB: the file was read`);
  });

  it('a symlink planted at <record>.<pid>.tmp: the file it points to is untouched, the set is written', async () => {
    const record = path.join(dir, `rec-${backend}.uffdws`);
    const victim = path.join(dir, `victim-${backend}`);
    fs.writeFileSync(victim, 'precious');
    const out = await runChildJson(`
      const fs = require('fs');
      const { Userfaultfd, Region, PageSource, readWorkingSet } = require('./dist');
      const record = ${JSON.stringify(record)};
      // Planted under every name the old code could pick (it used its own pid).
      fs.symlinkSync(${JSON.stringify(victim)}, record + '.' + process.pid + '.tmp');
      const u = Userfaultfd.open({ backend: '${backend}' });
      const r = Region.map(4 * u.pageSize, { backend: '${backend}' });
      u.serve(r, PageSource.zero(), { record });
      r.read(0, 1).then(() => {
        const out = {};
        try { u.saveWorkingSet(r, record); } catch (e) { out.saveError = e.code; }
        u.close();
        r.unmap();
        out.runs = readWorkingSet(record).runs.length;
        console.log(JSON.stringify(out));
      });`, { timeoutMs: DEADLINE });
    assert.strictEqual(fs.readFileSync(victim, 'utf8'), 'precious', 'the symlink was written through');
    assert.deepStrictEqual(out, { runs: 1 });
    assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => f.startsWith(`rec-${backend}`) && f.endsWith('.tmp') && !fs.lstatSync(path.join(dir, f)).isSymbolicLink()), []);
  });
});

// Under a 2 GB address-space limit, so that an allocation by the claimed range (a bitmap of its
// pages: 512 MiB to 4 GiB here) fails instead of passing unseen as untouched virtual memory.
describe('reliability: readWorkingSet() of a file claiming an enormous range', function () {
  this.timeout(DEADLINE + 10000);
  scratch();
  for (const [what, rangeLength] of [['2^45 bytes (was a bare RangeError)', 2 ** 45], ['2^44 bytes (was 4 GB allocated)', 2 ** 44],
    ['2^43 bytes (was 2 GB allocated)', 2 ** 43], ['2^63 bytes (past a safe integer)', 2n ** 63n]]) {
    it(`a checksummed 56-byte file claiming ${what}: ERR_UFFD_WORKING_SET_CORRUPT or a set, nothing allocated by it`, async () => {
      const file = path.join(dir, `huge-${String(rangeLength)}.uffdws`);
      fs.writeFileSync(file, setFile(rangeLength));
      const out = await runChildJson(`
        const { readWorkingSet } = require('./dist');
        const out = {};
        try { out.runs = readWorkingSet(${JSON.stringify(file)}).runs.length; } catch (e) { out.name = e.constructor.name; out.code = e.code; }
        out.maxRssMiB = Math.round(Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024);
        console.log(JSON.stringify(out));`, { timeoutMs: DEADLINE, ulimit: '-v 2000000' });
      assert.ok(out.runs === 1 || out.code === 'ERR_UFFD_WORKING_SET_CORRUPT', JSON.stringify(out));
      assert.ok(out.maxRssMiB < 400, `peak RSS ${out.maxRssMiB} MiB`);
    });
  }
});
