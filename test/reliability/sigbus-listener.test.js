// A JS process.on('SIGBUS') listener makes libuv install its own SIGBUS handler over the addon's
// guard; a region.read of a poisoned page then faulted again forever on its pool thread. Each
// case runs in a child with a deadline: a loop fails the case.
const assert = require('assert');
const { describeNative, runChild, scaled } = require('../helpers');

const BODY = (listenerFirst) => `
  const { Userfaultfd, Region, constants } = require('./dist');
  const PAGE = constants.pageSize;
  let heard = 0;
  const listen = () => process.on('SIGBUS', () => { heard++; });
  ${listenerFirst ? 'listen();' : ''}
  const region = Region.map(4 * PAGE, { backend: 'native' });
  ${listenerFirst ? '' : 'listen();'}
  const uffd = Userfaultfd.open({ backend: 'native', features: ['POISON'] });
  uffd.register(region);
  uffd.poison({ start: region.address, length: PAGE });
  (async () => {
    const out = {};
    await region.read(0, 16).then(() => { out.read = 'resolved'; }, (e) => { out.read = e.code; out.address = String(e.address); });
    await region.write(8, Buffer.from('x')).then(() => { out.write = 'resolved'; }, (e) => { out.write = e.code; });
    await uffd.zeropage({ start: region.address + BigInt(PAGE), length: PAGE });
    out.other = (await region.read(PAGE, 4))[0];   // an unpoisoned page still reads
    process.kill(process.pid, 'SIGBUS');             // a SIGBUS outside a copy still reaches JS
    await new Promise((r) => setTimeout(r, 50));
    out.heard = heard;
    uffd.close();
    region.unmap();
    console.log(JSON.stringify(out));
  })();`;

describeNative('reliability: SIGBUS with a JS SIGBUS listener', { features: ['POISON'] }, function () {
  this.timeout(scaled(30000));

  for (const listenerFirst of [false, true]) {
    it(`listener added ${listenerFirst ? 'before' : 'after'} the first region: a poisoned page rejects with SIGBUS, kill -BUS reaches the listener`, async () => {
      const r = await runChild(BODY(listenerFirst), { timeoutMs: 10000 });
      const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
      assert.strictEqual(r.timedOut, false, `looped: ${info}`);
      assert.strictEqual(r.code, 0, info);
      const out = JSON.parse(r.stdout.trim());
      assert.strictEqual(out.read, 'SIGBUS');
      assert.strictEqual(out.write, 'SIGBUS');
      assert.strictEqual(out.other, 0);
      assert.strictEqual(out.heard, 1);
    });
  }
});
