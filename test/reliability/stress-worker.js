// The fault handler of stress-child.js's 'worker' mode: adopts the uffd and fills each missing
// page from the shared source, while the main thread faults synchronously.
'use strict';
const { parentPort, workerData } = require('worker_threads');
const { Userfaultfd, constants } = require(workerData.dist);

const PAGE = constants.pageSize;
const uffd = Userfaultfd.fromFd(workerData.fd);
const src8 = new Uint8Array(workerData.source);
const base = workerData.base;
const stats = { faults: 0, copies: 0, eexist: 0 };

uffd.on('pagefault', (e) => {
  stats.faults++;
  const page = e.address - (e.address % BigInt(PAGE));
  const p = Number((page - base) / BigInt(PAGE));
  try {
    stats.copies++;
    uffd.copy(page, src8.subarray(p * PAGE, (p + 1) * PAGE));
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    stats.eexist++;
    uffd.wake({ start: page, length: PAGE });
  }
});
parentPort.on('message', (m) => { if (m === 'stats') parentPort.postMessage(stats); });
parentPort.postMessage('ready');
