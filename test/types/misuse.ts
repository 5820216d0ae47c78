// Each line below is a misuse that must NOT compile: tsc fails with "Unused '@ts-expect-error'
// directive" if one of them type-checks.
import { PageSource, Region, Userfaultfd } from 'userfaultfd';
import type { DirtyRun } from 'userfaultfd';

const uffd = Userfaultfd.open();
const region = Region.map(4096);

// @ts-expect-error a string is not a Range
uffd.register('0x7f0000000000');
// @ts-expect-error a Range's start is a bigint or a number, not a string
uffd.zeropage({ start: '4096', length: 4096 });
// @ts-expect-error a Range needs a length
uffd.wake({ start: 4096n });
// @ts-expect-error not a FeatureName
Userfaultfd.open({ features: ['NOT_A_FEATURE'] });
// @ts-expect-error not a backend
Userfaultfd.open({ backend: 'kernel' });
// @ts-expect-error not a self-fault policy
Userfaultfd.open({ onSelfFault: 'ignore' });
// @ts-expect-error copy takes bytes, not a string
uffd.copy(region, 'hello');
// @ts-expect-error writeProtect needs { protect }
uffd.writeProtect(region, {});
// @ts-expect-error register's modes are booleans
uffd.register(region, { wp: 1 });
// @ts-expect-error serve takes a PageSource
uffd.serve(region, '/path/to/file');
// @ts-expect-error PageSource.file's mode is 'mmap' or 'pread'
PageSource.file('/path', { mode: 'read' });
// @ts-expect-error PageSource.custom needs { size }
PageSource.custom(async () => new Uint8Array(0), {});
// @ts-expect-error onError is 'sigbus' or 'zeropage'
PageSource.custom(async () => new Uint8Array(0), { size: 1, onError: 'ignore' });
// @ts-expect-error protection is 'none' | 'read' | 'readwrite'
region.protect(0, 4096, 'rw');
// @ts-expect-error a fault's address is a bigint
uffd.on('pagefault', (e) => { const s: string = e.address; void s; });
// @ts-expect-error a 'remove' event has start and end, not address
uffd.on('remove', (e) => e.address);
// @ts-expect-error a misspelt event name
uffd.on('pagefualt', () => undefined);
// @ts-expect-error an event that does not exist
uffd.once('fault', () => undefined);
// @ts-expect-error read returns a Promise, not a Buffer
const b: Buffer = region.read(0, 16);
void b;
// @ts-expect-error dirtyPages' reset is a boolean
uffd.dirtyPages(region, { reset: 1 });
// @ts-expect-error a dirty run's start is a bigint
const runStart: number = uffd.dirtyPages(region)[0].start;
void runStart;
// @ts-expect-error errorOnExist is a boolean
uffd.copy(region, new Uint8Array(4096), { errorOnExist: 'no' });
// @ts-expect-error dirtyOffsets gives numbers, not runs
const offsetRun: DirtyRun[] = uffd.dirtyOffsets(region);
void offsetRun;
// @ts-expect-error a snapshot goes to a path or an fd, not a Buffer
void uffd.snapshot(region, Buffer.alloc(1));
