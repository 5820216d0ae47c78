// examples/postcopy's destination: placing frames from its two channels. The region is mapped
// by a Worker, as the example's workload maps it; the Worker unmaps it once every page is in
// (after its checksum). A frame that comes after that (a demand answer the background pass
// overtook) was placed anyway and UFFDIO_COPY failed with ENOENT: the flake under load.
const assert = require('assert');
const path = require('path');
const { Worker } = require('worker_threads');
const { describeNative, perTestUffd, pattern, PAGE } = require('../helpers');

const { Placement, placeRun } = require(path.join(__dirname, '..', '..', 'examples', 'postcopy', 'placement.js'));

const WORKLOAD = `
const { parentPort, workerData } = require('worker_threads');
const { Region } = require(workerData.dist);
const region = Region.map(workerData.size);
parentPort.postMessage(region.address);
parentPort.on('message', (m) => {
  if (m === 'read') return parentPort.postMessage(new Uint8Array(region.buffer.slice(0)));
  region.unmap();
  parentPort.postMessage('unmapped');
});
`;

/** A region of `pages` mapped by a Worker: { start, bytes(), unmap(), end() }. */
async function workerRegion(pages) {
  const worker = new Worker(WORKLOAD, { eval: true, workerData: { dist: path.join(__dirname, '..', '..', 'dist'), size: pages * PAGE } });
  const next = () => new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
  const start = await next();
  return {
    start,
    bytes: async () => { worker.postMessage('read'); return Buffer.from(await next()); },
    unmap: async () => { worker.postMessage('unmap'); await next(); },
    end: () => worker.terminate(),
  };
}

describeNative('examples/postcopy: placing frames', function () {
  const map = perTestUffd('native');
  let region;
  afterEach(async () => { if (region) await region.end(); region = null; });

  /** A Worker's region of `pages`, registered with a uffd of this test, and its Placement. */
  async function placementOver(pages) {
    const uffd = map.open({ userModeOnly: true });
    region = await workerRegion(pages);
    uffd.register({ start: region.start, length: pages * PAGE });
    return { uffd, placement: new Placement(uffd, region.start, pages) };
  }

  it('places each page once, counts a frame overlapping placed pages as already there, and resolves allIn', async function () {
    const { placement } = await placementOver(4);
    const image = pattern(4 * PAGE, 3);
    let all = false;
    placement.allIn.then(() => { all = true; });
    placement.frame(true, 1, 2, image.subarray(PAGE, 3 * PAGE));
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(all, false, 'allIn resolved with 2 pages of 4 in');
    placement.frame(false, 0, 4, image);
    await placement.allIn;
    assert.deepStrictEqual(placement.counts, { demandPages: 2, backgroundPages: 2, alreadyThere: 2 });
    assert.deepStrictEqual([...placement.present], [1, 1, 1, 1]);
    assert.ok((await region.bytes()).equals(image), 'the region does not hold the image');
  });

  it('a frame after every page is in is dropped: the workload may have unmapped the region (ENOENT)', async function () {
    const { uffd, placement } = await placementOver(4);
    const image = pattern(4 * PAGE, 5);
    placement.frame(false, 0, 4, image);
    await placement.allIn;
    await region.unmap(); // the Worker's checksum is done
    // The late demand answer for pages 2..3.
    assert.doesNotThrow(() => placement.frame(true, 2, 2, image.subarray(2 * PAGE)));
    assert.deepStrictEqual(placement.counts, { demandPages: 0, backgroundPages: 4, alreadyThere: 2 });
    // The hazard the ordering avoids: placing it anyway is what the example did.
    assert.throws(() => placeRun(uffd, region.start, 2, image.subarray(2 * PAGE)),
      (e) => e.code === 'ENOENT' && e.syscall === 'UFFDIO_COPY');
  });

  it('once finished early (the source hung up), no frame is placed', async function () {
    const { uffd, placement } = await placementOver(2);
    placement.finish();
    await placement.allIn;
    uffd.close();
    assert.doesNotThrow(() => placement.frame(false, 0, 2, pattern(2 * PAGE, 1)));
    assert.deepStrictEqual([placement.inCount, placement.counts.alreadyThere], [0, 2]);
  });
});
