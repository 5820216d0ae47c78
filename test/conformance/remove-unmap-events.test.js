// Non-cooperative events: REMOVE from dontneed, UNMAP from unmap.
const assert = require('assert');
const { Userfaultfd, Region } = require('../../dist');
const { at, describeBackends, requireFeature, pattern, delay, PAGE, perTestUffd } = require('../helpers');


describeBackends('events: remove and unmap', (backend) => {
  let uffd;
  const map = perTestUffd(backend);
  beforeEach(function () {
    requireFeature(this, backend, 'EVENT_REMOVE');
    requireFeature(this, backend, 'EVENT_UNMAP');
    uffd = map.open({ features: ['EVENT_REMOVE', 'EVENT_UNMAP'] });
  });
  const next = (type) => new Promise((resolve) => uffd.once(type, resolve));

  it('the negotiated features are listed', () => {
    assert.ok(uffd.features.includes('EVENT_REMOVE'));
    assert.ok(uffd.features.includes('EVENT_UNMAP'));
  });

  it('dontneed on a registered range raises remove with its start and end', async () => {
    const r = map(4);
    uffd.register(r);
    uffd.copy(r.address, pattern(4 * PAGE));
    const removed = next('remove');
    r.dontneed(PAGE, 2 * PAGE);
    const e = await removed;
    assert.deepStrictEqual(e, { type: 'remove', start: at(r, 1), end: at(r, 3) });
    assert.strictEqual(r.residentPages(), 2);
  });

  it('after remove, the pages are missing again: copy fills them', async () => {
    const r = map(1);
    uffd.register(r);
    uffd.copy(r.address, pattern(PAGE, 1));
    const removed = next('remove');
    r.dontneed(0, PAGE);
    await removed;
    assert.strictEqual(uffd.copy(r.address, pattern(PAGE, 2)), PAGE);
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 2));
  });

  it('unmap of a registered region raises unmap with the whole range', async () => {
    const r = Region.map(2 * PAGE, { backend });
    uffd.register(r);
    const start = r.address;
    const unmapped = next('unmap');
    r.unmap();
    const e = await unmapped;
    assert.deepStrictEqual(e, { type: 'unmap', start, end: start + BigInt(2 * PAGE) });
    assert.strictEqual(r.buffer.byteLength, 0);
  });

  it('events() delivers remove and unmap in order', async () => {
    const r = Region.map(2 * PAGE, { backend });
    uffd.register(r);
    uffd.zeropage(r);
    const it = uffd.events();
    r.dontneed(0, PAGE);
    const start = r.address;
    r.unmap();
    const a = await it.next();
    const b = await it.next();
    await it.return();
    assert.deepStrictEqual([a.value.type, b.value.type], ['remove', 'unmap']);
    assert.deepStrictEqual([a.value.start, b.value.start, b.value.end], [start, start, start + BigInt(2 * PAGE)]);
  });

  it('no remove event without EVENT_REMOVE, none for unregistered memory', async () => {
    const plain = Userfaultfd.open({ backend });
    try {
      const r = map(2);
      plain.register({ start: r.address, length: PAGE });
      const seen = [];
      plain.on('remove', (e) => seen.push(e));
      uffd.on('remove', (e) => seen.push(e));
      r.dontneed(0, 2 * PAGE);
      await delay(30);
      assert.deepStrictEqual(seen, []);
    } finally {
      plain.close();
    }
  });
});
