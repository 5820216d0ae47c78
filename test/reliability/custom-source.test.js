// PageSource.custom hazards, each in a child with a deadline: the JS thread faulting on memory
// its own read() would answer, close() with reads in flight, a read that never settles.
const assert = require('assert');
const { describeNative, runChild, scaled } = require('../helpers');

const PRELUDE = `
const { Userfaultfd, Region, PageSource, constants } = require('./dist');
const PAGE = constants.pageSize;
const uffd = Userfaultfd.open({ backend: 'native' });
const region = Region.map(4 * PAGE, { backend: 'native' });
`;
const BOUND = 15000;

function expectExit(r, what) {
  const info = `${what}: code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, `did not exit by itself: ${info}`);
  assert.strictEqual(r.signal, null, info);
  assert.strictEqual(r.code, 0, info);
}

describeNative('reliability: PageSource.custom', function () {
  this.timeout(scaled(60000));

  it("the JS thread's own fault is answered by the guard (its read() could never run): no hang", async () => {
    const r = await runChild(`${PRELUDE}
      let reads = 0;
      uffd.serve(region, PageSource.custom(async () => { reads++; return new Uint8Array(PAGE).fill(7); }, { size: 4 * PAGE }));
      uffd.on('error', (e) => console.log('error', e.code));
      const v = new Uint8Array(region.buffer)[0]; // the JS thread faults here
      setTimeout(() => { console.log('value', v, 'reads', reads); uffd.close(); }, 50);`, { timeoutMs: BOUND });
    expectExit(r, 'self fault');
    assert.match(r.stdout, /error ERR_UFFD_SELF_FAULT/);
    assert.match(r.stdout, /value 0 reads 0/);
  });

  it('close() with a read in flight: the waiting thread runs again, the read is aborted, the process ends', async () => {
    const r = await runChild(`${PRELUDE}
      let aborted = false;
      uffd.serve(region, PageSource.custom((o, l, { signal }) => new Promise(() => {
        signal.addEventListener('abort', () => { aborted = true; });
      }), { size: 4 * PAGE, timeoutMs: 2 ** 31 - 1 })); // a timer left behind would hold the child
      region.read(0, 16).then((b) => console.log('read', b.length, 'aborted', aborted));
      setTimeout(() => uffd.close(), 100);`, { timeoutMs: BOUND });
    expectExit(r, 'close with a read in flight');
    assert.match(r.stdout, /read 16 aborted true/);
  });

  it('a read that never settles: the default per-read timeout and retries still answer the fault', async () => {
    const r = await runChild(`${PRELUDE}
      uffd.serve(region, PageSource.custom(() => new Promise(() => {}),
        { size: 4 * PAGE, timeoutMs: 100, retries: 2, retryDelayMs: 10, onError: 'zeropage' }));
      uffd.on('error', (e) => console.log('error', e.code, e.answeredWith));
      region.read(0, PAGE).then((b) => { console.log('read zeros', b.every((x) => x === 0)); uffd.close(); });`,
    { timeoutMs: BOUND });
    expectExit(r, 'never settles');
    assert.match(r.stdout, /error ERR_UFFD_SOURCE_TIMEOUT zeropage/);
    assert.match(r.stdout, /read zeros true/);
  });
});
