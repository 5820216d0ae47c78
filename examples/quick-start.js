// The README's 15-line example: a JS handler fills each page the first time it is touched.
// test-expect: <Buffer 2a 2a 2a 2a
const { Userfaultfd, Region } = require('userfaultfd');

async function main() {
  const uffd = Userfaultfd.open();                 // the kernel where it can, else the simulator
  const region = Region.map(64 * uffd.pageSize, { backend: uffd.backend }); // not yet populated
  uffd.register(region);                           // missing-page faults now come to us
  uffd.on('pagefault', (fault) => {                // { address, write, wp, minor, tid }
    uffd.copy(fault.address, Buffer.alloc(uffd.pageSize, 0x2a));
  });
  const bytes = await region.read(2 * uffd.pageSize, 16); // touched on the thread pool: JS stays free
  console.log(uffd.backend, bytes);                // native <Buffer 2a 2a 2a ... >
  uffd.close();
  region.unmap();
}
main();
