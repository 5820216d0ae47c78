// Compiled alone by test/types/types.test.js, which expects tsc to FAIL on the marked line.
import { Userfaultfd } from 'userfaultfd';

const uffd = Userfaultfd.open();
uffd.register('0x7f0000000000'); // error TS2345: a string where a Range or Region is wanted
