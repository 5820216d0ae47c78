// Non-cooperative features block the thread that causes the event (madvise, munmap, fork) until
// the message is read. With no listener, nothing read it: dontneed(), unmap() and spawnSync()
// never returned (D state). A uffd opened with such a feature reads its events from open() on.
// Each case runs in a child with a deadline; a hang fails it.
const assert = require('assert');
const { describeBackends, runChild, requireFeature, requirePrivileged, PAGE } = require('../helpers');

const TRIGGERS = {
  EVENT_REMOVE: `region.dontneed(0, ${PAGE});`, // of a page written before register()
  EVENT_UNMAP: 'region.unmap();',
  EVENT_FORK: "require('child_process').spawnSync('true');",
};

function run(backend, body) {
  return runChild(`
    const { Userfaultfd, Region } = require('./dist');
    const fs = require('fs');
    const backend = '${backend}';
    (async () => { ${body} })();`, { timeoutMs: 10000 });
}

function expectExit(r) {
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, `hung: ${info}`);
  assert.strictEqual(r.code, 0, info);
  return r.stdout;
}

describeBackends('reliability: non-cooperative features with no listener', (backend) => {
  for (const [feature, trigger] of Object.entries(TRIGGERS)) {
    it(`${feature}: the call that raises the event returns, and the process exits by itself (no close())`, async function () {
      requireFeature(this, backend, feature);
      if (feature === 'EVENT_FORK' && backend === 'native') requirePrivileged(this, 'EVENT_FORK', 'ptrace');
      const out = expectExit(await run(backend, `
        const region = Region.map(4 * ${PAGE}, { backend });
        await region.write(0, Buffer.alloc(${PAGE}, 1));
        const uffd = Userfaultfd.open({ backend, features: ['${feature}'] });
        uffd.register(region);
        ${trigger}
        console.log('returned');`));
      assert.match(out, /returned/);
    });
  }

  it('a fault read with no consumer waits, and is delivered once a listener comes', async function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    const out = expectExit(await run(backend, `
      const region = Region.map(4 * ${PAGE}, { backend });
      const uffd = Userfaultfd.open({ backend, features: ['EVENT_REMOVE'] });
      uffd.register(region);
      let settled = false;
      const read = region.read(${PAGE}, 1).then((b) => { settled = true; return b[0]; });
      await new Promise((r) => setTimeout(r, 100));
      console.log('settled before listener', settled);
      uffd.on('pagefault', (e) => uffd.copy(e.address, new Uint8Array(${PAGE}).fill(0x44)));
      console.log('byte', await read);
      uffd.close();`));
    assert.match(out, /settled before listener false/);
    assert.match(out, /byte 68/);
  });

  it("EVENT_FORK with a reader but no 'fork' listener: each child's uffd is closed at once, not at GC", async function () {
    requireFeature(this, backend, 'EVENT_FORK');
    if (backend === 'native') requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    const out = expectExit(await run(backend, `
      const region = Region.map(4 * ${PAGE}, { backend });
      const uffd = Userfaultfd.open({ backend, features: ['EVENT_FORK'] });
      uffd.register(region);
      uffd.on('pagefault', () => {});
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      require('child_process').spawnSync('true');
      await new Promise((r) => setTimeout(r, 50));
      const before = fds();
      for (let i = 0; i < 30; i++) require('child_process').spawnSync('true');
      await new Promise((r) => setTimeout(r, 100));
      console.log(JSON.stringify({ before, after: fds() }));
      uffd.close();`));
    const { before, after } = JSON.parse(out.trim());
    assert.strictEqual(after, before);
  });
});
