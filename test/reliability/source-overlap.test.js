// A page source that views the memory its own uffd answers: the reader faulted on its own uffd,
// and after that neither close() nor process.exit() returned. serve() refuses it with
// ERR_UFFD_SOURCE_OVERLAP. Each case runs in a child with a deadline (a hang fails the case).
const assert = require('assert');
const { describeBackends, runChild, PAGE } = require('../helpers');

function run(backend, body) {
  return runChild(`
    const { Userfaultfd, Region, PageSource } = require('./dist');
    const PAGE = ${PAGE}, backend = '${backend}';
    const out = {};
    const attempt = (name, f) => { try { f(); out[name] = 'served'; } catch (e) { out[name] = e.code; } };
    (async () => {
      ${body}
      console.log(JSON.stringify(out));
      process.exit(0);
    })();`, { timeoutMs: 10000 });
}

function parse(r) {
  const info = `code ${r.code} signal ${r.signal} timedOut ${r.timedOut}\n${r.stdout}\n${r.stderr}`;
  assert.strictEqual(r.timedOut, false, `hung: ${info}`);
  assert.strictEqual(r.code, 0, info);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

describeBackends('reliability: a page source over memory its own uffd answers', (backend) => {
  it('a view of the served region itself is refused, and the region then reads and closes', async () => {
    const out = parse(await run(backend, `
      const region = Region.map(16 * PAGE, { backend });
      const uffd = Userfaultfd.open({ backend });
      attempt('whole', () => uffd.serve(region, PageSource.buffer(new Uint8Array(region.buffer))));
      attempt('tail', () => uffd.serve(region, PageSource.buffer(new Uint8Array(region.buffer, 8 * PAGE, PAGE))));
      attempt('arraybuffer', () => uffd.serve(region, PageSource.buffer(region.buffer)));
      out.registered = uffd.serve(region, PageSource.zero()) !== undefined; // nothing was left registered half-way
      out.read = (await region.read(0, 16))[0];
      uffd.close();
      out.closed = true;`));
    assert.deepStrictEqual(out, { whole: 'ERR_UFFD_SOURCE_OVERLAP', tail: 'ERR_UFFD_SOURCE_OVERLAP', arraybuffer: 'ERR_UFFD_SOURCE_OVERLAP', registered: true, read: 0, closed: true });
  });

  it('a view of another range registered on the same uffd is refused; a region it does not register is served', async () => {
    const out = parse(await run(backend, `
      const a = Region.map(4 * PAGE, { backend });
      const b = Region.map(4 * PAGE, { backend });
      const c = Region.map(4 * PAGE, { backend });
      await c.write(0, Buffer.alloc(4 * PAGE, 0x5a));
      const uffd = Userfaultfd.open({ backend });
      uffd.register(a);
      attempt('registered', () => uffd.serve(b, PageSource.buffer(new Uint8Array(a.buffer, PAGE, PAGE))));
      attempt('unregistered', () => uffd.serve(b, PageSource.buffer(new Uint8Array(c.buffer))));
      out.byte = (await b.read(PAGE, 1))[0];
      uffd.close();`));
    assert.deepStrictEqual(out, { registered: 'ERR_UFFD_SOURCE_OVERLAP', unregistered: 'served', byte: 0x5a });
  });
});
