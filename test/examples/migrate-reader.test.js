// examples/migrate's stream reader, fed a stream of frames split at every byte boundary, with
// frames that carry no payload (a post-copy SWITCH with no dirty run left). Deterministic: each
// chunk is pushed once the consumer waits for more, as a socket delivers it under load. The
// reader once took the first chunk for a read of 0 bytes when none had arrived: a TypeError.
const assert = require('assert');
const { EventEmitter } = require('events');
const path = require('path');

const { Reader } = require(path.join(__dirname, '..', '..', 'examples', 'migrate', 'reader.js'));

/** Frames as examples/migrate sends them: a 16-byte header (u32 payload length at 4), then the payload. */
function stream(payloads) {
  const parts = [];
  payloads.forEach((len, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt8(i + 1, 0);
    h.writeUInt32LE(len, 4);
    parts.push(h, Buffer.alloc(len, i + 1));
  });
  return Buffer.concat(parts);
}

/** Reads frames until the stream ends: [type, payload] each. */
async function consume(reader) {
  const frames = [];
  for (;;) {
    let h;
    try {
      h = await reader.read(16);
    } catch (e) {
      if (e.message === 'connection closed') return frames;
      throw e;
    }
    frames.push([h[0], Buffer.from(await reader.read(h.readUInt32LE(4)))]);
  }
}

const turn = () => new Promise((r) => setImmediate(r));

/** Feeds `chunks` one at a time, each once the consumer has run as far as it can; then ends. */
async function feed(chunks) {
  const sock = new EventEmitter();
  const got = consume(new Reader(sock));
  for (const c of chunks) {
    await turn();
    sock.emit('data', c);
  }
  await turn();
  sock.emit('end');
  return got;
}

function splitAt(buf, cuts) {
  const out = [];
  let prev = 0;
  for (const c of [...cuts, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('examples/migrate: the stream reader', function () {
  // A frame with no payload first, between two and last; payloads shorter, equal and longer
  // than a header.
  const payloads = [0, 5, 16, 0, 0, 33, 1, 0];
  const whole = stream(payloads);
  const expected = payloads.map((len, i) => [i + 1, Buffer.alloc(len, i + 1)]);

  it('reads the frames whole, and split at every single byte boundary', async function () {
    assert.deepStrictEqual(await feed([whole]), expected);
    for (let cut = 1; cut < whole.length; cut++) {
      assert.deepStrictEqual(await feed(splitAt(whole, [cut])), expected, `split at byte ${cut}`);
    }
  });

  it('reads the frames split at every pair of boundaries, and a byte at a time', async function () {
    for (let a = 1; a < whole.length; a += 3) {
      for (let b = a + 1; b < whole.length; b += 5) {
        assert.deepStrictEqual(await feed(splitAt(whole, [a, b])), expected, `split at bytes ${a} and ${b}`);
      }
    }
    const bytes = [...whole].map((_, i) => i + 1).slice(0, -1);
    assert.deepStrictEqual(await feed(splitAt(whole, bytes)), expected);
  });

  it('skips empty chunks', async function () {
    const chunks = splitAt(whole, [16, 16, 21, 21, 21]);
    assert.ok(chunks.some((c) => c.length === 0));
    assert.deepStrictEqual(await feed(chunks), expected);
  });

  it('read(0) with nothing buffered resolves with 0 bytes; reads asked together resolve in order', async function () {
    const sock = new EventEmitter();
    const reader = new Reader(sock);
    assert.strictEqual((await reader.read(0)).length, 0);
    const first = reader.read(2);
    const second = reader.read(3);
    sock.emit('data', Buffer.from('abcd'));
    sock.emit('data', Buffer.from('e'));
    assert.deepStrictEqual([String(await first), String(await second)], ['ab', 'cde']);
  });

  it('the stream ending rejects a read it cannot satisfy; the bytes it kept stay readable', async function () {
    const sock = new EventEmitter();
    const reader = new Reader(sock);
    const r = reader.read(4);
    sock.emit('data', Buffer.from('xyz'));
    sock.emit('end');
    await assert.rejects(r, /connection closed/);
    assert.strictEqual(String(await reader.read(3)), 'xyz');
    await assert.rejects(reader.read(1), /connection closed/);
  });
});
