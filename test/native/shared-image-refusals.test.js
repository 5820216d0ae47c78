// Shared images, bad input (native-only): each gives a coded error, nothing hangs (every case
// runs in a child process with a deadline, or waits on a bounded timer), no fd is left behind,
// and no clone reads bytes from outside the source.
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource, Region, SharedImage, listenForUffd, constants } = require('../../dist');
const { describeNative, pattern, PAGE, runChild, skipWithReason, nextEvents } = require('../helpers');

const DIST = path.join(__dirname, '..', '..', 'dist');
const ERRNO = constants.errno;

/** The fds this process holds now. */
const openFds = () => fs.readdirSync('/proc/self/fd').length;


describeNative('SharedImage: bad input', function () {
  let dir;
  let file;
  let sock;
  const PAGES = 16;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-image-bad-'));
    file = path.join(dir, 'image.bin');
    fs.writeFileSync(file, pattern(PAGES * PAGE, 5));
  });
  beforeEach(function () {
    sock = path.join(dir, `s${Math.random().toString(36).slice(2, 8)}.sock`);
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A client in a child process: `body` runs with `b` (the binding), `sock`, `PAGE`, `report(o)`. */
  function client(body) {
    return runChild(`
      const b = require(${JSON.stringify(path.join(DIST, 'base', 'native.js'))}).binding;
      const { attachSharedImage, Region, Userfaultfd } = require(${JSON.stringify(DIST)});
      const sock = ${JSON.stringify(sock)};
      const PAGE = ${PAGE};
      const frame = (o) => { const body = Buffer.from(JSON.stringify(o)); const m = Buffer.alloc(8 + body.length);
        m.set([0, 0x55, 0x46, 0x44]); m.writeUInt32LE(body.length, 4); body.copy(m, 8); return m; };
      const report = (o) => console.log(JSON.stringify(o));
      (async () => { ${body} })().catch((e) => report({ threw: e.code || e.message }));
    `, { timeoutMs: 20000 });
  }
  const parse = (r) => {
    assert.strictEqual(r.timedOut, false, 'the child hung');
    assert.strictEqual(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  };

  it('a client expecting another size: ERR_UFFD_IMAGE_SIZE there, ERR_UFFD_PEER_HANGUP here; no fd left', async function () {
    const image = SharedImage.create(PageSource.file(file));
    const listener = listenForUffd(sock, { image });
    const fds = openFds();
    try {
      const errs = nextEvents(listener, 'connectionError', 1);
      const o = parse(await client(`await attachSharedImage(sock, { size: ${2 * PAGES * PAGE} }); report({ attached: true });`));
      assert.deepStrictEqual(o, { threw: 'ERR_UFFD_IMAGE_SIZE' });
      assert.strictEqual((await errs)[0].code, 'ERR_UFFD_PEER_HANGUP');
      assert.strictEqual(openFds(), fds);
    } finally {
      listener.close();
      image.close();
    }
  });

  it('a client that sends no uffd after the image: ERR_UFFD_TIMEOUT, ERR_UFFD_PEER_HANGUP or ERR_UFFD_NO_FD; no fd left', async function () {
    const image = SharedImage.create(PageSource.file(file));
    const listener = listenForUffd(sock, { image, messageTimeoutMs: 300 });
    const fds = openFds();
    try {
      const errs = nextEvents(listener, 'connectionError', 3);
      const got = await Promise.all([
        // Takes the image and says nothing (until the listener gives up on it).
        client(`const h = await b.receiveFdMessage(sock, 5000, 65536); await new Promise((r) => setTimeout(r, 1500)); report({ fd: h.fd >= 0 });`),
        // Takes the image and hangs up.
        client(`const h = await b.receiveFdMessage(sock, 5000, 65536); b.closeFd(h.sock); report({ fd: h.fd >= 0 });`),
        // Takes the image and answers without an fd.
        client(`const h = await b.receiveFdMessage(sock, 5000, 65536); b.sendOnSocket(h.sock, -1, frame({ clone: { start: '0x${PAGE.toString(16)}', length: PAGE } }));
          await new Promise((r) => setTimeout(r, 500)); report({ fd: h.fd >= 0 });`),
      ]);
      for (const r of got) assert.deepStrictEqual(parse(r), { fd: true });
      const codes = (await errs).map((e) => e.code).sort();
      assert.deepStrictEqual(codes, ['ERR_UFFD_NO_FD', 'ERR_UFFD_PEER_HANGUP', 'ERR_UFFD_TIMEOUT']);
      assert.strictEqual(listener.received, 0);
      assert.strictEqual(openFds(), fds);
    } finally {
      listener.close();
      image.close();
    }
  });

  it('a closed image: the client is told ERR_UFFD_IMAGE_CLOSED, and so is the listener', async function () {
    const image = SharedImage.create(PageSource.file(file));
    const listener = listenForUffd(sock, { image });
    image.close();
    try {
      const errs = nextEvents(listener, 'connectionError', 1);
      const o = parse(await client(`await attachSharedImage(sock); report({ attached: true });`));
      assert.deepStrictEqual(o, { threw: 'ERR_UFFD_IMAGE_CLOSED' });
      assert.strictEqual((await errs)[0].code, 'ERR_UFFD_IMAGE_CLOSED');
    } finally {
      listener.close();
    }
  });

  it('a clone of the wrong size, or no clone at all, sent back: the client is refused with the code', async function () {
    const image = SharedImage.create(PageSource.file(file));
    const listener = listenForUffd(sock, { image });
    try {
      const errs = nextEvents(listener, 'connectionError', 2);
      const send = (clone) => client(`
        const h = await b.receiveFdMessage(sock, 5000, 65536);
        const r = Region.map(${PAGES * PAGE});
        const u = Userfaultfd.open();
        u.register(r);
        b.sendOnSocket(h.sock, u.fd, frame(${JSON.stringify(clone)}));
        const a = await b.receiveFdMessage(h.sock, 5000, 65536);
        report(JSON.parse(a.data.toString()).error.code);`);
      const [small, none] = await Promise.all([send({ clone: { start: `0x${PAGE.toString(16)}`, length: PAGE } }), send({ hello: 1 })]);
      assert.strictEqual(parse(small), 'ERR_UFFD_IMAGE_SIZE');
      assert.strictEqual(parse(none), 'ERR_UFFD_IMAGE_HANDSHAKE');
      assert.deepStrictEqual((await errs).map((e) => e.code).sort(), ['ERR_UFFD_IMAGE_HANDSHAKE', 'ERR_UFFD_IMAGE_SIZE']);
    } finally {
      listener.close();
      image.close();
    }
  });

  it('memory that is not the image: refused here (ERR_UFFD_IMAGE_MAPPING); from another process, served with private copies, never zeros', async function () {
    const image = SharedImage.create(PageSource.file(file));
    const r = Region.map(PAGES * PAGE);
    const { Userfaultfd } = require('../../dist');
    const uffd = Userfaultfd.open();
    try {
      assert.throws(() => uffd.serve(r, image), { code: 'ERR_UFFD_IMAGE_MAPPING' });
      assert.strictEqual(image.stats().clones, 0);
    } finally {
      uffd.close();
      r.unmap();
    }
    // Another process registers anonymous memory and says it is a clone: the listener cannot see
    // its mappings. Its faults come back while the page is in the image (a wake maps nothing
    // there), until the page is copied into it privately.
    const listener = listenForUffd(sock, { image });
    try {
      const o = parse(await client(`
        const h = await b.receiveFdMessage(sock, 5000, 65536);
        const r = Region.map(${PAGES * PAGE});
        const u = Userfaultfd.open();
        u.register(r);
        b.sendOnSocket(h.sock, u.fd, frame({ clone: { start: '0x' + r.address.toString(16), length: ${PAGES * PAGE} } }));
        await b.receiveFdMessage(h.sock, 5000, 65536);
        const got = await r.read(0, ${PAGES * PAGE});
        report({ right: got.equals(require('fs').readFileSync(${JSON.stringify(file)})) });`));
      assert.deepStrictEqual(o, { right: true });
    } finally {
      listener.close();
      image.close();
    }
  });

  describe('a memfd refused by the kernel', function () {
    let deny;
    before(function () {
      deny = path.join(dir, 'deny-memfd');
      const cc = spawnSync('cc', ['-O2', '-o', deny, path.join(__dirname, '..', 'fixtures', 'deny-memfd.c')], { encoding: 'utf8' });
      if (cc.status !== 0) skipWithReason(this, `cannot compile the seccomp helper (${cc.error ? cc.error.code : cc.stderr.trim()})`);
    });

    for (const [what, syscall] of [['memfd_create', 'memfd_create'], ['add_seals', 'fcntl']]) {
      it(`${what} denied (seccomp): SharedImage.create throws EPERM naming ${syscall}, and leaves no fd`, function () {
        const script = `
          const fs = require('fs');
          const { SharedImage, PageSource } = require(${JSON.stringify(DIST)});
          const fds = fs.readdirSync('/proc/self/fd').length;
          try {
            SharedImage.create(PageSource.file(${JSON.stringify(file)}));
            console.log(JSON.stringify({ made: true }));
          } catch (e) {
            console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, name: e.name, leaked: fs.readdirSync('/proc/self/fd').length - fds }));
          }`;
        const r = spawnSync(deny, [what, String(ERRNO.EPERM), process.execPath, '-e', script], { encoding: 'utf8', timeout: 20000 });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.deepStrictEqual(JSON.parse(r.stdout), { code: 'EPERM', errno: ERRNO.EPERM, syscall, name: 'UffdError', leaked: 0 });
      });
    }
  });
});
