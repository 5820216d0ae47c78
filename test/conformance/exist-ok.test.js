// errorOnExist: false: a destination page that is already there is success for copy, zeropage,
// continue and move: the call wakes the range (unless dontWake) and returns 0, throwing nothing.
const assert = require('assert');
const { at, pages, delay, describeBackends, requireFeature, pattern, PAGE, perTestUffd } = require('../helpers');

const OK = { errorOnExist: false };

describeBackends('errorOnExist: false (EEXIST as done, no exception)', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('copy onto a present page returns 0 and leaves its bytes; the default still throws EEXIST', async () => {
    const r = map(2);
    uffd.register(r);
    assert.strictEqual(uffd.copy(r.address, pattern(PAGE, 1), OK), PAGE); // absent: copied as usual
    assert.strictEqual(uffd.copy(r.address, pattern(PAGE, 2), OK), 0);
    assert.throws(() => uffd.copy(r.address, pattern(PAGE, 2)), { code: 'EEXIST', syscall: 'UFFDIO_COPY', bytes: 0 });
    assert.throws(() => uffd.copy(r.address, pattern(PAGE, 2), { errorOnExist: true }), { code: 'EEXIST' });
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 1));
  });

  it('wakes the thread waiting on the page, as the answer would have', async () => {
    const r = map(1);
    uffd.register(r);
    const results = [];
    uffd.on('pagefault', (e) => {
      uffd.copy(e.address, pattern(PAGE, 3), { dontWake: true }); // there, but nobody woken
      results.push(uffd.copy(e.address, pattern(PAGE, 4), OK));
    });
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 3));
    assert.deepStrictEqual(results, [0]);
  });

  it('with dontWake it wakes nobody: the read waits for wake()', async () => {
    const r = map(1);
    uffd.register(r);
    let fault = null;
    uffd.on('pagefault', (e) => {
      fault = e;
      uffd.copy(e.address, pattern(PAGE, 5), { dontWake: true });
      assert.strictEqual(uffd.copy(e.address, pattern(PAGE, 6), { ...OK, dontWake: true }), 0);
    });
    let done = false;
    const read = r.read(0, PAGE).then((b) => { done = true; return b; });
    while (fault === null) await delay(5);
    await delay(50);
    assert.strictEqual(done, false, 'woken without a wake()');
    uffd.wake({ start: fault.address, length: PAGE });
    assert.deepStrictEqual(await read, pattern(PAGE, 5));
  });

  it('two reads of one page, each answered with errorOnExist: false: both see the bytes, nothing thrown', async () => {
    const r = map(1);
    uffd.register(r);
    const answers = [];
    const errors = [];
    uffd.on('error', (e) => errors.push(e));
    uffd.on('pagefault', (e) => answers.push(uffd.copy(e.address, pattern(PAGE, 7), OK)));
    const [a, b] = await Promise.all([r.read(0, PAGE), r.read(0, PAGE)]);
    assert.deepStrictEqual(a, pattern(PAGE, 7));
    assert.deepStrictEqual(b, pattern(PAGE, 7));
    assert.ok(answers.filter((n) => n === PAGE).length === 1 && answers.every((n) => n === PAGE || n === 0), `${answers}`);
    assert.deepStrictEqual(errors, []);
  });

  it('zeropage: 0 on a present page; a partial zeropage is still EAGAIN with the bytes done', async () => {
    const r = map(3);
    uffd.register(r);
    uffd.copy(at(r, 1), pattern(PAGE, 8));
    assert.strictEqual(uffd.zeropage(pages(r, 1, 1), OK), 0);
    assert.throws(() => uffd.zeropage(r, OK), { code: 'EAGAIN', syscall: 'UFFDIO_ZEROPAGE', bytes: PAGE });
    assert.strictEqual(uffd.zeropage(pages(r, 2, 1), OK), PAGE);
    assert.deepStrictEqual(await r.read(PAGE, PAGE), pattern(PAGE, 8));
  });

  it('other errors still throw: ENOENT outside the registration', () => {
    const r = map(2);
    uffd.register(pages(r, 0, 1));
    assert.throws(() => uffd.copy(at(r, 1), pattern(PAGE), OK), { code: 'ENOENT', syscall: 'UFFDIO_COPY' });
    assert.throws(() => uffd.zeropage(pages(r, 1, 1), OK), { code: 'ENOENT', syscall: 'UFFDIO_ZEROPAGE' });
  });

  it('errorOnExist must be a boolean: ERR_INVALID_ARG_TYPE before any syscall', () => {
    const r = map(1);
    uffd.register(r);
    for (const call of [() => uffd.copy(r.address, pattern(PAGE), { errorOnExist: 0 }),
      () => uffd.zeropage(r, { errorOnExist: 'no' }), () => uffd.continue(r, { errorOnExist: null }),
      () => uffd.move(r, r, PAGE, { errorOnExist: 1 })]) {
      assert.throws(call, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    assert.strictEqual(r.residentPages(), 0);
  });

  it('continue: a second continue returns 0', async function () {
    requireFeature(this, backend, 'MINOR_SHMEM');
    const u = map.open({ features: ['MINOR_SHMEM'] });
    const r = map(1, { shared: true });
    const alias = map.keep(r.alias());
    await alias.write(0, pattern(PAGE, 9));
    u.register(r, { minor: true });
    assert.strictEqual(u.continue(r, OK), PAGE);
    assert.strictEqual(u.continue(r, OK), 0);
    assert.throws(() => u.continue(r), { code: 'EEXIST', syscall: 'UFFDIO_CONTINUE' });
    assert.deepStrictEqual(await r.read(0, PAGE), pattern(PAGE, 9));
  });

  it('move onto a present destination page returns 0 and leaves the source as it was', async function () {
    requireFeature(this, backend, 'MOVE');
    const u = map.open({ features: ['MOVE'] });
    const src = map(1);
    const dst = map(1);
    await src.write(0, pattern(PAGE, 10));
    u.register(dst);
    u.zeropage(dst);
    assert.strictEqual(u.move(dst, src, PAGE, OK), 0);
    assert.throws(() => u.move(dst, src, PAGE), { code: 'EEXIST', syscall: 'UFFDIO_MOVE' });
    assert.deepStrictEqual(await src.read(0, PAGE), pattern(PAGE, 10));
    assert.deepStrictEqual(await dst.read(0, PAGE), Buffer.alloc(PAGE));
  });
});
