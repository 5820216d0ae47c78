// A seeded random stream (mulberry32) for the fuzzers: the same seed replays the same run.
'use strict';

function seededRandom(seed) {
  let state = seed >>> 0;
  const rnd = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(rnd() * n);
  return { rnd, int, pick: (a) => a[int(a.length)], chance: (p) => rnd() < p };
}

module.exports = { seededRandom };
