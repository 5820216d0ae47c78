// Checks an image of the pattern written by dirty-snapshot-writer.js: every word carries its
// checksum, and along the write order the generations step down at most once, by one. An image
// copied while the writer runs (not at one point in time) mixes generations out of order.
'use strict';
const PAGE = require('../../dist').constants.pageSize;
const WORDS = PAGE / 4;

function check(w, g) {
  let h = Math.imul(w ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(g + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 15;
  return (Math.imul(h, 0x27d4eb2f) >>> 12) & 0xfffff;
}

function strideFor(n) {
  let s = Math.floor(n * 0.618) | 1;
  const gcd = (a, b) => (b === 0 ? a : gcd(b, a % b));
  while (gcd(s, n) !== 1) s += 2;
  return s;
}

/** null when the image is a consistent point-in-time view, else what is wrong. */
function verifyImage(buf) {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const pages = buf.byteLength / PAGE;
  const stride = strideFor(pages);
  let stepped = false;
  let prev = -1;
  for (let i = 0; i < pages; i++) {
    const p = (i * stride) % pages;
    for (let k = 0; k < WORDS; k++) {
      const w = p * WORDS + k;
      const v = words[w];
      const g = v >>> 20;
      // 0: generation 0, the writer's first pass had not reached the word yet.
      if (v !== 0 && (v & 0xfffff) !== check(w, g)) return `word ${w} (page ${p}) fails its checksum: 0x${v.toString(16)}`;
      if (prev !== -1 && g !== prev) {
        if (stepped || g !== prev - 1) return `generation goes ${prev} -> ${g} at word ${w} (page ${p}, order ${i})`;
        stepped = true;
      }
      prev = g;
    }
  }
  return null;
}

module.exports = { verifyImage, check, strideFor };
