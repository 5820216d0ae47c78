'use strict';
// The stream reader of examples/migrate: exact byte counts from a socket, in order.

/**
 * Reads exact byte counts from a stream, in the order asked. Only the chunks that hold the
 * bytes asked for are joined (joining the whole backlog on every read made a fast sender's
 * stream quadratic).
 *
 * read(0) resolves at once with an empty buffer: a frame may carry no payload (a post-copy
 * SWITCH with no dirty run left, when the writer did not write after the last round), and then
 * nothing may have arrived yet. Reading the first chunk for it was the TypeError seen under load.
 */
class Reader {
  /** `stream`: anything with on('data') and on('end') (a net.Socket). */
  constructor(stream) {
    this.chunks = [];
    this.have = 0;
    this.waiting = []; // reads not yet satisfied, in the order asked
    this.ended = false;
    stream.on('data', (d) => this.push(d));
    stream.on('end', () => { this.ended = true; this.pump(); });
  }

  /** Resolves with the next `n` bytes; rejects if the stream ends first. */
  read(n) {
    return new Promise((resolve, reject) => { this.waiting.push({ n, resolve, reject }); this.pump(); });
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.have += chunk.length;
    this.pump();
  }

  pump() {
    while (this.waiting.length > 0) {
      const w = this.waiting[0];
      if (this.have < w.n) {
        if (this.ended) {
          for (const r of this.waiting.splice(0)) r.reject(new Error('connection closed'));
        }
        return;
      }
      this.waiting.shift();
      w.resolve(this.take(w.n));
    }
  }

  /** The next n bytes (n <= have). */
  take(n) {
    this.have -= n;
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let filled = 0; filled < n;) {
      const c = this.chunks[0];
      const part = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, part);
      filled += part;
      if (part === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(part);
    }
    return out;
  }
}

module.exports = { Reader };
