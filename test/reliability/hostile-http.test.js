// PageSource.http against hostile servers (issue 24), on both backends, each case in a child
// with a deadline: a 206 whose body never ends, a HEAD with no Content-Length, a HEAD that never
// answers, a redirect to another origin carrying the caller's headers, an answer without the
// pinned ETag, a Content-Range whose total is another object's. The servers are the test peers
// of test/fixtures/http-peers.js, in this process; the child serves and reads.
const assert = require('assert');
const crypto = require('crypto');
const { describeBackends, pattern, runUffdChild, PAGE } = require('../helpers');
const { startPeer } = require('../fixtures/http-peers');

const PAGES = 16;
const DEADLINE = 20000;
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

/**
 * A child (runUffdChild) whose `source` is PageSource.http(url, options), on a region of PAGES
 * pages, with the 'error' events' codes in out.errors and `sha(bytes)` at hand; runs `body`.
 */
function scenario(backend, url, options, body) {
  return runUffdChild(backend, `
    const crypto = require('crypto');
    const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
    out.errors = [];
    u.on('error', (e) => out.errors.push(e.code));
    const source = PageSource.http(${JSON.stringify(url)}, ${JSON.stringify(options)});
    ${body}`, { pages: PAGES, timeoutMs: DEADLINE });
}

describeBackends('reliability: hostile HTTP servers', (backend) => {
  const data = pattern(PAGES * PAGE, 24);
  const peers = [];
  const peer = async (body = data) => {
    const p = await startPeer(body);
    peers.push(p);
    return p;
  };
  afterEach(async () => {
    for (const p of peers.splice(0)) await p.close();
  });

  it('a 206 whose body never ends: the window asked for is read, the rest cancelled, before timeoutMs', async () => {
    const p = await peer();
    p.endless = true;
    const out = await scenario(backend, p.url, { size: PAGES * PAGE, chunkSize: 4 * PAGE, timeoutMs: 60000, retries: 0 }, `
      u.serve(r, source);
      out.bytes = sha(await r.read(0, 4 * PAGE));`);
    assert.strictEqual(out.bytes, sha(data.subarray(0, 4 * PAGE)), JSON.stringify(out));
    assert.deepStrictEqual(out.errors, []);
    assert.ok(p.endlessClosed >= 1, 'the endless body was cancelled (its connection closed)');
  });

  it('HEAD 200 with no Content-Length: the size comes from a ranged GET, never 0 (a region of zeros)', async () => {
    const p = await peer();
    p.headNoLength = true;
    const out = await scenario(backend, p.url, { chunkSize: 4 * PAGE }, `
      out.size = (await source.ready()).size;
      u.serve(r, source);
      out.bytes = sha(await r.read(0, ${PAGES} * PAGE));`);
    assert.strictEqual(out.size, PAGES * PAGE, JSON.stringify(out));
    assert.strictEqual(out.bytes, sha(data));
  });

  it('a HEAD that never answers: ready() fails at timeoutMs, and faults (a new request per attempt) are served', async () => {
    const p = await peer();
    p.silentHeads = 1;
    const out = await scenario(backend, p.url, { chunkSize: 4 * PAGE, timeoutMs: 500, retries: 3, retryDelayMs: 10 }, `
      const ready = source.ready().then(() => 'resolved', (e) => e.code);
      u.serve(r, source);
      out.bytes = sha(await r.read(0, 4 * PAGE));
      out.ready = await ready;`);
    assert.strictEqual(out.ready, 'ERR_UFFD_SOURCE_TIMEOUT', JSON.stringify(out));
    assert.strictEqual(out.bytes, sha(data.subarray(0, 4 * PAGE)));
    assert.ok(p.heads >= 2, `a second HEAD was made (${p.heads})`);
  });

  it('a redirect to another origin is refused (ERR_UFFD_SOURCE_REDIRECT): no header, no byte of it', async () => {
    const other = await peer(pattern(PAGES * PAGE, 99));
    const p = await peer();
    p.redirect = other.url;
    const out = await scenario(backend, p.url, { size: PAGES * PAGE, chunkSize: 4 * PAGE, headers: { 'x-api-key': 'secret' }, onError: 'zeropage' }, `
      u.serve(r, source);
      const b = await r.read(0, PAGE);
      out.zeros = b.every((x) => x === 0);`);
    assert.deepStrictEqual(out.errors, ['ERR_UFFD_SOURCE_REDIRECT'], JSON.stringify(out));
    assert.strictEqual(out.zeros, true);
    assert.strictEqual(other.requests, 0, 'the other origin was never asked');
  });

  it("crossOriginRedirects: 'follow': the other origin's bytes, and none of the caller's headers sent there", async () => {
    const other = await peer();
    const p = await peer(pattern(PAGES * PAGE, 98));
    p.redirect = other.url;
    const out = await scenario(backend, p.url, {
      chunkSize: 4 * PAGE, headers: { 'x-api-key': 'secret' }, crossOriginRedirects: 'follow',
    }, `
      u.serve(r, source);
      out.bytes = sha(await r.read(0, 4 * PAGE));`);
    assert.strictEqual(out.bytes, sha(data.subarray(0, 4 * PAGE)), JSON.stringify(out));
    assert.ok(p.headers.length > 0 && p.headers.every((h) => h['x-api-key'] === 'secret'), 'the first origin got the key');
    assert.ok(other.requests > 0);
    assert.ok(other.headers.every((h) => h['x-api-key'] === undefined), 'the other origin never got the key');
  });

  it('a redirect within the origin is followed with the headers', async () => {
    const p = await peer();
    p.redirect = p.url.replace('object.bin', 'moved.bin');
    const out = await scenario(backend, p.url, { chunkSize: 4 * PAGE, headers: { 'x-api-key': 'secret' } }, `
      u.serve(r, source);
      out.bytes = sha(await r.read(0, 4 * PAGE));`);
    assert.strictEqual(out.bytes, sha(data.subarray(0, 4 * PAGE)), JSON.stringify(out));
    assert.ok(p.headers.every((h) => h['x-api-key'] === 'secret'));
  });

  it('with an ETag pinned, a 206 without one is ERR_UFFD_SOURCE_CHANGED, its bytes not served', async () => {
    const p = await peer();
    p.noEtag = true; // HEAD still names it (and pins it); the ranged GETs do not
    const out = await scenario(backend, p.url, { chunkSize: 4 * PAGE, onError: 'zeropage', retries: 0 }, `
      out.etag = (await source.ready()).etag;
      u.serve(r, source);
      out.zeros = (await r.read(0, PAGE)).every((x) => x === 0);`);
    assert.ok(out.etag, JSON.stringify(out));
    assert.deepStrictEqual(out.errors, ['ERR_UFFD_SOURCE_CHANGED']);
    assert.strictEqual(out.zeros, true);
  });

  it("a Content-Range total other than the pinned size (another version's) is ERR_UFFD_SOURCE_CHANGED", async () => {
    const p = await peer();
    p.total = PAGES * PAGE + PAGE;
    const out = await scenario(backend, p.url, { size: PAGES * PAGE, chunkSize: 4 * PAGE, onError: 'zeropage', retries: 0 }, `
      u.serve(r, source);
      out.zeros = (await r.read(0, PAGE)).every((x) => x === 0);`);
    assert.deepStrictEqual(out.errors, ['ERR_UFFD_SOURCE_CHANGED'], JSON.stringify(out));
    assert.strictEqual(out.zeros, true);
  });
});
