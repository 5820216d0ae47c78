// A Worker for test/native/dirty-snapshot.test.js and bench/dirty-snapshot.js: maps a region,
// posts its address, and on command writes to it from this thread.
//   { cmd: 'touch', pages: [..] }          one byte per listed page, then posts 'done'
//   { cmd: 'pattern' }                     writes generations of the checked pattern in a loop
//                                          until 'stop'; posts { gens } when stopped
// The pattern: 32-bit words, word w of generation g = (g << 20) | check(w, g); words are
// written in `order` (pages in a stride permutation, words ascending in each page), so that a
// point-in-time image holds generation g for a prefix of that order and g - 1 after it.
'use strict';
const { parentPort, workerData } = require('worker_threads');
const { Region, constants } = require(workerData.dist);
const { check, strideFor } = require('./pattern-check');

const PAGE = constants.pageSize;
const WORDS = PAGE / 4;
// The kernel's memory, always: the main thread registers it by address.
const region = Region.map(workerData.length, { backend: 'native', hugetlb: workerData.hugetlb === true });
const words = new Uint32Array(region.buffer);
const pageCount = workerData.length / PAGE;
let stop = false;

async function writePattern() {
  const stride = strideFor(pageCount);
  let g = 1;
  for (; !stop && g < 4000; g++) {
    for (let i = 0; i < pageCount; i++) {
      const p = (i * stride) % pageCount;
      const base = p * WORDS;
      for (let k = 0; k < WORDS; k++) words[base + k] = ((g << 20) | check(base + k, g)) >>> 0;
    }
    if (g % 4 === 0) await new Promise((r) => setImmediate(r)); // let 'stop' arrive
  }
  return g - 1;
}

parentPort.on('message', async (m) => {
  if (m.cmd === 'touch') {
    for (const p of m.pages) words[(p * PAGE) / 4] += 1;
    parentPort.postMessage('done');
  } else if (m.cmd === 'pattern') {
    const gens = await writePattern();
    parentPort.postMessage({ gens });
  } else if (m.cmd === 'stop') {
    stop = true;
  } else if (m.cmd === 'exit') {
    region.unmap();
    parentPort.close();
  }
});
parentPort.postMessage({ address: region.address, length: region.length });
