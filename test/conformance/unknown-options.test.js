// A misspelt option is refused, not ignored: every options object of the public API rejects an
// unknown key with a TypeError (code ERR_UFFD_UNKNOWN_OPTION) that names the key and the
// closest known one, before anything is opened, mapped or registered (docs/design.md).
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Userfaultfd, Region, PageSource, sendUffd, listenForUffd } = require('../../dist');
const { describeBackends, describeNative, perTestUffd, PAGE } = require('../helpers');

/** The error a misspelt `key` must raise, suggesting `near` (null: none is near). */
function unknown(where, key, near, name = 'options') {
  return (e) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.strictEqual(e.code, 'ERR_UFFD_UNKNOWN_OPTION');
    assert.strictEqual(e.option, key);
    assert.strictEqual(e.suggestion, near ?? undefined);
    assert.ok(e.message.startsWith(`${where}: unknown option "${key}" in ${name}. `), e.message);
    if (near !== null) assert.match(e.message, new RegExp(`Did you mean "${near}"\\?$`));
    else assert.match(e.message, /Known options: /);
    return true;
  };
}

const openFds = () => (process.platform === 'linux' ? fs.readdirSync('/proc/self/fd').length : 0);

describeBackends('unknown option keys', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('Userfaultfd.open() and fromFd(): refused before any fd is opened', () => {
    const before = openFds();
    assert.throws(() => Userfaultfd.open({ backend, nonblocking: true }), unknown('Userfaultfd.open()', 'nonblocking', 'nonBlocking'));
    assert.throws(() => Userfaultfd.open({ backend, feature: ['THREAD_ID'] }), unknown('Userfaultfd.open()', 'feature', 'features'));
    assert.throws(() => Userfaultfd.open({ backend, userModeOnly: false, turbo: true }), unknown('Userfaultfd.open()', 'turbo', null));
    assert.throws(() => Userfaultfd.fromFd(uffd.fd, { backend, onSelffault: 'sigbus' }),
      unknown('Userfaultfd.fromFd()', 'onSelffault', 'onSelfFault'));
    assert.strictEqual(openFds(), before);
  });

  it('register(), copy(), zeropage(), writeProtect(), continue(), poison(), move(), readSync()', () => {
    const r = map(2);
    assert.throws(() => uffd.register(r, { mising: true }), unknown('register()', 'mising', 'missing'));
    // Refused before the ioctl: the range is still unregistered, so registering it works.
    assert.deepStrictEqual(typeof uffd.register(r).ioctls, 'object');
    const page = { start: r.address, length: PAGE };
    assert.throws(() => uffd.copy(r.address, Buffer.alloc(PAGE), { dontwake: true }), unknown('copy()', 'dontwake', 'dontWake'));
    assert.throws(() => uffd.zeropage(page, { dontWak: true }), unknown('zeropage()', 'dontWak', 'dontWake'));
    assert.throws(() => uffd.writeProtect(page, { protect: true, dontwake: true }), unknown('writeProtect()', 'dontwake', 'dontWake'));
    assert.throws(() => uffd.continue(page, { pw: true }), unknown('continue()', 'pw', 'wp'));
    assert.throws(() => uffd.poison(page, { dont_wake: true }), unknown('poison()', 'dont_wake', 'dontWake'));
    assert.throws(() => uffd.move(r.address, r.address + BigInt(PAGE), PAGE, { allowSourceHoles: true }),
      unknown('move()', 'allowSourceHoles', 'allowSrcHoles'));
    assert.throws(() => uffd.readSync({ timeout: 0 }), unknown('readSync()', 'timeout', 'timeoutMs'));
    // Nothing was copied: the page is still missing, and a copy of it now works.
    assert.strictEqual(uffd.copy(r.address, Buffer.alloc(PAGE, 7)), PAGE);
  });

  it('serve() and its workingSet: refused before the range is served', async () => {
    const r = map(2);
    const src = PageSource.buffer(Buffer.alloc(2 * PAGE, 5));
    assert.throws(() => uffd.serve(r, src, { readAhead: false }), unknown('serve()', 'readAhead', 'readahead'));
    assert.throws(() => uffd.serve(r, src, { workingSet: { maxMB: 1 } }), unknown('serve()', 'maxMB', 'maxMiB', 'options.workingSet'));
    // Not served by the refused calls: serving it now works, and the bytes come from the source.
    uffd.serve(r, src, { readahead: false });
    assert.deepStrictEqual(await r.read(PAGE, 4), Buffer.alloc(4, 5));
  });

  it('Region.map(): refused before anything is mapped', () => {
    assert.throws(() => Region.map(PAGE, { backend, hugeTLB: true }), unknown('Region.map()', 'hugeTLB', 'hugetlb'));
    assert.throws(() => Region.map(PAGE, { backend, share: true }), unknown('Region.map()', 'share', 'shared'));
  });

  it('the sources: PageSource.file(), custom(), http()', () => {
    assert.throws(() => PageSource.file('/dev/null', { ofset: 0 }), unknown('PageSource.file()', 'ofset', 'offset'));
    const read = async () => new Uint8Array(PAGE);
    assert.throws(() => PageSource.custom(read, { size: PAGE, chunksize: PAGE }), unknown('PageSource.custom()', 'chunksize', 'chunkSize'));
    assert.throws(() => PageSource.http('http://127.0.0.1:9/x', { header: {} }), unknown('PageSource.http()', 'header', 'headers'));
    assert.throws(() => PageSource.http('http://127.0.0.1:9/x', { eTag: 'x' }), unknown('PageSource.http()', 'eTag', 'etag'));
  });

  it('a key set to undefined counts as absent, as it does for every known option', () => {
    const u = map.open({ nonblocking: undefined, features: undefined });
    assert.strictEqual(u.closed, false);
    map.keep(Region.map(PAGE, { backend, huge: undefined }));
  });
});

describeNative('unknown option keys: fd passing', function () {
  let dir;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-opts-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sendUffd() and listenForUffd() refuse a misspelt option before connecting or binding', async () => {
    const sock = path.join(dir, 's');
    await assert.rejects(async () => sendUffd(sock, 0, 'x', { timeout: 10 }), unknown('sendUffd()', 'timeout', 'timeoutMs'));
    assert.throws(() => listenForUffd(sock, { allowUid: [0] }), unknown('listenForUffd()', 'allowUid', 'allowUids'));
    assert.strictEqual(fs.existsSync(sock), false, 'the socket was bound');
  });
});

describeBackends('error messages that read right', (backend) => {
  let uffd;
  const map = perTestUffd(backend, (u) => { uffd = u; });

  it('serve() over a range already served names both ranges as ranges, not as a string', () => {
    const r = map(8);
    uffd.serve({ start: r.address, length: 4 * PAGE }, PageSource.zero());
    const hex = `0x${r.address.toString(16)}`;
    assert.throws(() => uffd.serve({ start: r.address, length: 8 * PAGE }, PageSource.zero()), (e) => {
      assert.strictEqual(e.code, 'ERR_OUT_OF_RANGE');
      assert.strictEqual(e.message, `The value of "range" is out of range. It must be outside the ranges already served ` +
        `(${hex}, ${4 * PAGE} bytes). Received a range (${hex}, ${8 * PAGE} bytes)`);
      return true;
    });
  });
});
