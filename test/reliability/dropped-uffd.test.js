// A uffd dropped without close() after serve(), or after on('pagefault') plus unref(), kept
// +2 fds and +1 thread each: the reader's thread-safe function held the object. Once
// unreachable it must be collected: its reader stopped, its fds closed. A child creates and
// drops N of them, collects, and compares /proc/self/fd and /proc/self/task with its baseline.
const assert = require('assert');
const { describeNative, runChild, scaled, PAGE } = require('../helpers');

const N = 40;

function run(how) {
  return runChild(`
    require('v8').setFlagsFromString('--expose-gc');
    const gc = require('vm').runInNewContext('gc');
    const fs = require('fs');
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const count = () => ({ fds: fs.readdirSync('/proc/self/fd').length, threads: fs.readdirSync('/proc/self/task').length });
    const settle = async () => {
      for (let i = 0; i < 6; i++) { gc(); await new Promise((r) => setImmediate(r)); await new Promise((r) => setTimeout(r, 10)); }
    };
    function drop() {
      const region = Region.map(4 * ${PAGE}, { backend: 'native' });
      const uffd = Userfaultfd.open({ backend: 'native' });
      ${how}
      region.unmap();
    }
    (async () => {
      drop();             // warm up: the module's own one-time state
      await settle();
      const before = count();
      for (let i = 0; i < ${N}; i++) drop();
      const during = count();
      await settle();
      console.log(JSON.stringify({ before, during, after: count() }));
    })();`, { timeoutMs: 30000 });
}

describeNative('reliability: a uffd dropped without close()', function () {
  this.timeout(scaled(60000));

  const cases = {
    'after serve()': "uffd.serve(region, PageSource.zero());",
    "after on('pagefault') and unref()": "uffd.on('pagefault', () => {}); uffd.unref();",
    'with EVENT_REMOVE and no listener (the event reader alone)': '',
  };
  for (const [name, how] of Object.entries(cases)) {
    it(`${name}: collected; fds and threads return to the baseline`, async () => {
      const body = name.startsWith('with EVENT_REMOVE')
        ? "uffd.close(); const u2 = Userfaultfd.open({ backend: 'native', features: ['EVENT_REMOVE'] }); u2.register(region);"
        : how;
      const r = await run(body);
      assert.strictEqual(r.code, 0, `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stderr}`);
      const { before, during, after } = JSON.parse(r.stdout.trim());
      assert.ok(during.fds > before.fds, `the uffds were open before collection: ${JSON.stringify({ before, during })}`);
      assert.deepStrictEqual(after, before, `during: ${JSON.stringify(during)}`);
    });
  }

  it("a uffd with a 'pagefault' listener, ref'd, is not collected: it still answers", async () => {
    const r = await runChild(`
      require('v8').setFlagsFromString('--expose-gc');
      const gc = require('vm').runInNewContext('gc');
      const { Userfaultfd, Region } = require('./dist');
      const region = Region.map(4 * ${PAGE}, { backend: 'native' });
      (function () {
        const uffd = Userfaultfd.open({ backend: 'native' });
        uffd.register(region);
        uffd.on('pagefault', (e) => { uffd.copy(e.address, new Uint8Array(${PAGE}).fill(0x33)); });
      })();
      (async () => {
        for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 10)); }
        const b = await region.read(${PAGE}, 1);
        console.log('byte', b[0]);
        process.exit(0);
      })();`, { timeoutMs: 15000 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /byte 51/);
  });
});
