/**
 * A page source must never read memory that its own uffd answers: the reader thread would fault
 * on its own uffd while answering, and neither close() nor process.exit() could return after.
 */
import type { PageSource } from '../sources/page-source';
import { regionSpanOf } from './region';

interface Span {
  start: bigint;
  length: number;
}

/** Throws ERR_UFFD_SOURCE_OVERLAP when `source` views memory inside one of `ranges`. */
export function checkSourceOverlap(source: PageSource, ranges: Iterable<Span>): void {
  if (source.kind !== 'buffer' || source.bytes === null || source.bytes.byteLength === 0) return;
  const s = regionSpanOf(source.bytes);
  if (s === null) return;
  const end = s.start + BigInt(s.length);
  for (const r of ranges) {
    if (s.start < r.start + BigInt(r.length) && end > r.start) throw overlapError(s, r);
  }
}

function overlapError(s: Span, r: Span): RangeError {
  const hex = (a: bigint): string => `0x${a.toString(16)}`;
  const e = new RangeError(`The page source views memory this userfaultfd answers ` +
    `(source ${hex(s.start)}, ${s.length} bytes; registered ${hex(r.start)}, ${r.length} bytes): ` +
    `reading it would fault on the same userfaultfd. Serve a copy, another region, or a file`);
  return Object.assign(e, { code: 'ERR_UFFD_SOURCE_OVERLAP' });
}
