// An ES module TypeScript consumer: the "import" condition's types (dist/index.d.mts).
import userfaultfd, { Userfaultfd, probe, Region } from 'userfaultfd';
import type { Range } from 'userfaultfd';

const same: typeof Userfaultfd = userfaultfd.Userfaultfd;
const available: boolean = probe({ backend: 'native' }).available;
const range: Range = { start: 0n, length: 4096 };
export { same, available, range, Region };
