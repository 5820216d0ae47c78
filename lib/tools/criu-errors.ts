/** The coded errors of `userfaultfd criu-lazy-pages` (docs/criu.md lists what each means). */
import { describeError } from '../base/errors';

export type CriuErrorCode =
  /** An image the restore needs is not in the image directory (or at the pages URL). */
  | 'ERR_CRIU_IMAGE_MISSING'
  /** An image is not what CRIU writes: a bad magic, a truncated record, a record protobuf cannot decode, pages past the pages file. */
  | 'ERR_CRIU_IMAGE_CORRUPT'
  /** Images this daemon cannot serve: pages in a parent image (pre-dump, incremental dumps). */
  | 'ERR_CRIU_UNSUPPORTED'
  /** criu restore sent a pid that the images have no task for. */
  | 'ERR_CRIU_NO_IMAGES'
  /** The socket carried something that is not CRIU's lazy-pages protocol. */
  | 'ERR_CRIU_PROTOCOL'
  /** What came with a task's message is not a userfaultfd. */
  | 'ERR_CRIU_NOT_UFFD'
  /** The userfaultfd lacks the events a restored program needs followed (FORK, REMAP, REMOVE, UNMAP). */
  | 'ERR_CRIU_UFFD_FEATURES'
  /** The pages could not be read, or a page could not be installed. */
  | 'ERR_CRIU_SOURCE'
  /** The socket could not be set up. */
  | 'ERR_CRIU_SOCKET';

export class CriuError extends Error {
  constructor(readonly code: CriuErrorCode, message: string) {
    super(message);
    this.name = 'CriuError';
  }
}

/** `e` as the daemon reports it: a CriuError as it is, anything else as ERR_CRIU_SOURCE. */
export function asCriuError(e: unknown): CriuError {
  if (e instanceof CriuError) return e;
  return new CriuError('ERR_CRIU_SOURCE', describeError(e as Error));
}
