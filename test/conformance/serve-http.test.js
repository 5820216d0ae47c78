// PageSource.http against a real S3-compatible server (s3rver, started here; objects uploaded and
// presigned with the AWS SDK) and against a node:http peer that misbehaves on purpose.
const assert = require('assert');
const { PageSource } = require('../../dist');
const { describeBackends, pattern, PAGE, perTestUffd, scaled } = require('../helpers');
const { startS3, startPeer } = require('../fixtures/http-peers');

const nextError = (uffd) => new Promise((resolve) => uffd.once('error', resolve));
const SIZE = 20 * PAGE + 333; // not a page multiple: the last page is part source, part zeros

/** What a region of `pages` pages serving `data` must read as. */
function expected(data, pages) {
  const b = Buffer.alloc(pages * PAGE);
  data.copy(b);
  return b;
}

describeBackends('serve: PageSource.http', (backend) => {
  let s3;
  let uffd;
  const peers = [];
  const map = perTestUffd(backend, (u) => { uffd = u; });
  before(async function () {
    this.timeout(scaled(30000));
    s3 = await startS3();
  });
  after(async () => {
    if (s3) await s3.close();
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) await p.close();
  });
  const peer = async (body, options) => {
    const p = await startPeer(body, options);
    peers.push(p);
    return p;
  };

  it('an S3 object through a presigned URL: the bytes, zeros past its end; size from HEAD', async () => {
    const data = pattern(SIZE, 21);
    const url = await s3.put('region.bin', data);
    const source = PageSource.http(url, { chunkSize: 8 * PAGE });
    const info = await source.ready();
    assert.strictEqual(info.size, SIZE);
    assert.match(info.etag, /^"[0-9a-f]+"$/);
    const r = map(24);
    uffd.serve(r, source);
    assert.deepStrictEqual(await r.read(0, 24 * PAGE), expected(data, 24));
    const s = uffd.stats().source;
    assert.strictEqual(s.reads, 3); // 8 + 8 + 4 pages (plus 333 bytes): one ranged GET per window
    assert.strictEqual(s.bytesRead, SIZE);
  });

  it('an S3 object replaced mid-restore: ERR_UFFD_SOURCE_CHANGED, the new bytes are never served', async () => {
    const v1 = pattern(16 * PAGE, 1);
    const v2 = pattern(16 * PAGE, 2);
    const url = await s3.put('replaced.bin', v1);
    const r = map(16);
    uffd.serve(r, PageSource.http(url, { chunkSize: 4 * PAGE, onError: 'zeropage' }));
    assert.deepStrictEqual(await r.read(0, 4 * PAGE), v1.subarray(0, 4 * PAGE));
    await s3.put('replaced.bin', v2);
    const error = nextError(uffd);
    const later = await r.read(8 * PAGE, PAGE);
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_CHANGED');
    assert.deepStrictEqual(later, Buffer.alloc(PAGE), 'the fault is answered by onError, not with v2');
    assert.strictEqual(uffd.stats().source.retries, 0, 'a changed object is not retried');
    assert.doesNotMatch(e.message, /X-Amz-Signature/, 'the presigned query stays out of messages');
  });

  it('headers from a function are asked for on each request (short-lived tokens)', async () => {
    const data = pattern(8 * PAGE, 4);
    const p = await peer(data);
    let n = 0;
    const r = map(8);
    uffd.serve(r, PageSource.http(p.url, { chunkSize: 4 * PAGE, headers: () => ({ authorization: `Bearer t${++n}` }) }));
    assert.deepStrictEqual(await r.read(0, 8 * PAGE), data);
    assert.deepStrictEqual(p.headers.map((h) => h.authorization), ['Bearer t1', 'Bearer t2', 'Bearer t3']);
    assert.ok(p.headers.slice(1).every((h) => h['if-match'] === p.etag), 'ranged GETs are pinned with If-Match');
  });

  for (const fail of ['drop', '500', 'stall']) {
    it(`a server that answers '${fail}' twice: retried, then the right bytes`, async () => {
      const data = pattern(4 * PAGE, 8);
      const p = await peer(data);
      p.fail = fail;
      p.failures = 2;
      const r = map(4);
      // A stall ends by the timeout; the others keep the default, so that a slow machine is not
      // mistaken for a stall.
      const timeoutMs = fail === 'stall' ? 1000 : undefined;
      uffd.serve(r, PageSource.http(p.url, { size: data.length, retries: 5, retryDelayMs: 1, timeoutMs }));
      assert.deepStrictEqual(await r.read(0, 4 * PAGE), data);
      const s = uffd.stats().source;
      if (fail === 'stall') {
        assert.ok(s.timeouts >= 2 && s.retries >= 2, JSON.stringify(s));
      } else {
        assert.strictEqual(s.retries, 2);
      }
    });
  }

  it('a server that keeps failing: the fault is answered by onError and the error names the status', async () => {
    const p = await peer(pattern(4 * PAGE, 8));
    p.fail = '500';
    p.failures = Infinity;
    const r = map(4);
    uffd.serve(r, PageSource.http(p.url, { size: 4 * PAGE, retries: 2, retryDelayMs: 1, onError: 'zeropage' }));
    const error = nextError(uffd);
    assert.deepStrictEqual(await r.read(0, PAGE), Buffer.alloc(PAGE));
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_HTTP');
    assert.match(e.message, /500/);
    assert.strictEqual(p.gets, 3);
  });

  it('a server that ignores Range (200, whole body) is refused: ERR_UFFD_SOURCE_NO_RANGE', async () => {
    const p = await peer(pattern(16 * PAGE, 6));
    p.fail = 'norange';
    const r = map(16);
    uffd.serve(r, PageSource.http(p.url, { chunkSize: 4 * PAGE, onError: 'zeropage' }));
    const error = nextError(uffd);
    assert.deepStrictEqual(await r.read(4 * PAGE, PAGE), Buffer.alloc(PAGE));
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_NO_RANGE');
    assert.strictEqual(uffd.stats().source.retries, 0);
  });

  it('a server that ignores Range for an object of one window: the whole body is that window', async () => {
    const data = pattern(3 * PAGE, 13);
    const p = await peer(data);
    p.fail = 'norange';
    const r = map(4);
    uffd.serve(r, PageSource.http(p.url));
    assert.deepStrictEqual(await r.read(0, 4 * PAGE), expected(data, 4));
  });

  it('HEAD refused (405): the size comes from the Content-Range of a one-byte GET', async () => {
    const data = pattern(5 * PAGE + 7, 14);
    const p = await peer(data);
    p.noHead = true;
    const source = PageSource.http(p.url);
    assert.strictEqual((await source.ready()).size, data.length);
    const r = map(6);
    uffd.serve(r, source);
    assert.deepStrictEqual(await r.read(0, 6 * PAGE), expected(data, 6));
    assert.strictEqual(p.headers[1].range, 'bytes=0-0');
  });

  it('options.etag pins a version: another object is refused (412), never served', async () => {
    const p = await peer(pattern(2 * PAGE, 15));
    const r = map(2);
    uffd.serve(r, PageSource.http(p.url, { size: 2 * PAGE, etag: '"a-version-long-gone"', onError: 'zeropage' }));
    const error = nextError(uffd);
    assert.deepStrictEqual(await r.read(0, PAGE), Buffer.alloc(PAGE));
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_CHANGED');
    assert.strictEqual(p.headers[0]['if-match'], '"a-version-long-gone"');
  });

  it('a missing object: 404, not retried, a coded error', async () => {
    const url = (await s3.put('present.bin', pattern(PAGE))).replace('present.bin', 'absent.bin');
    const r = map(1);
    uffd.serve(r, PageSource.http(url, { retryDelayMs: 1, onError: 'zeropage' }));
    const error = nextError(uffd);
    await r.read(0, PAGE);
    const e = await error;
    assert.strictEqual(e.code, 'ERR_UFFD_SOURCE_HTTP');
    assert.strictEqual(e.cause.status, 404);
    assert.strictEqual(uffd.stats().source.retries, 0);
  });
});
