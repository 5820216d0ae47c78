/**
 * PageSource.custom: faults answered from an asynchronous read function (object storage, a
 * peer, anything). This file holds what a custom source is: its options, checked into a
 * CustomSpec that PageSource carries, and the counters stats() reports. The machinery that
 * serves a range from one is custom-server.ts. JS thread only.
 */
import { checkAligned, toLength, toOptions } from '../base/args';
import { keysOf } from '../base/option-keys';
import { codedError, invalidArgType, outOfRange } from '../base/errors';
import { FaultStats } from '../base/fault-stats';
import type { Range, SourceStats } from '../base/types';

/**
 * What a custom source needs of the uffd it answers for: its page size and the answering
 * ioctls. The uffd passes itself; a source never reaches for the rest of the class.
 */
export interface FaultAnswerer {
  readonly pageSize: number;
  readonly closed: boolean;
  copy(dst: bigint, src: Uint8Array): number;
  zeropage(range: Range): number;
  poison(range: Range): number;
  wake(range: Range): void;
}

/** The user's read: the bytes at [offset, offset + length) of the source. */
export type CustomRead = (offset: number, length: number, options: { signal: AbortSignal }) =>
  Promise<Uint8Array | ArrayBuffer> | Uint8Array | ArrayBuffer;

export interface CustomSourceOptions {
  /** Bytes in the source; pages past it read as zeros. */
  size: number;
  /** Bytes per read, a page multiple (default 1 MiB). Windows are aligned to it. */
  chunkSize?: number;
  /** Reads in flight at most (default 4). */
  concurrency?: number;
  /** Attempts after the first one failed (default 3). */
  retries?: number;
  /** First backoff between attempts in ms, doubled each time up to 2 s (default 50). */
  retryDelayMs?: number;
  /** Time one read may take before it is aborted and counted as failed (default 10000 ms). */
  timeoutMs?: number;
  /** Bytes of fetched windows kept while some of their pages are not copied (default 16 windows). */
  cacheSize?: number;
  /** What answers a fault whose read finally failed (default 'sigbus'). */
  onError?: 'sigbus' | 'zeropage';
}

export const CUSTOM_OPTION_KEYS = keysOf<CustomSourceOptions>({
  size: true, chunkSize: true, concurrency: true, retries: true, retryDelayMs: true, timeoutMs: true, cacheSize: true, onError: true,
});

/** What a custom source knows of itself once opened: its size, and for HTTP its pinned ETag. */
export interface SourceInfo {
  size: number;
  etag?: string;
}

/** A checked custom source: what serve() needs to build a CustomServer. */
export interface CustomSpec {
  read: CustomRead;
  /** Known up front (custom), or learned by open() at the first fault (http). */
  size: number | undefined;
  open: ((signal: AbortSignal) => Promise<SourceInfo>) | null;
  chunkSize: number;
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  cacheSize: number;
  onError: 'sigbus' | 'zeropage';
  /** For error messages: 'PageSource.custom' or the URL without its query. */
  label: string;
}

const DEFAULTS = { chunkSize: 1 << 20, concurrency: 4, retries: 3, retryDelayMs: 50, timeoutMs: 10_000 };

/** Checks PageSource.custom's arguments (and http's, which adds read/open). */
export function customSpec(read: unknown, options: unknown, pageSize: number, extra: Partial<CustomSpec> = {}): CustomSpec {
  if (typeof read !== 'function') throw invalidArgType('read', 'a function (offset, length) => Promise<Uint8Array>', read);
  const o = toOptions<CustomSourceOptions>(options, 'options');
  let size: number | undefined;
  if (extra.open === undefined || o.size !== undefined) size = toLength(o.size, 'options.size', true);
  const chunkSize = o.chunkSize === undefined ? DEFAULTS.chunkSize : toLength(o.chunkSize, 'options.chunkSize');
  checkAligned(chunkSize, pageSize, 'options.chunkSize');
  const concurrency = o.concurrency === undefined ? DEFAULTS.concurrency : toLength(o.concurrency, 'options.concurrency');
  const retries = o.retries === undefined ? DEFAULTS.retries : toLength(o.retries, 'options.retries', true);
  const retryDelayMs = o.retryDelayMs === undefined ? DEFAULTS.retryDelayMs : toLength(o.retryDelayMs, 'options.retryDelayMs', true);
  const timeoutMs = o.timeoutMs === undefined ? DEFAULTS.timeoutMs : toLength(o.timeoutMs, 'options.timeoutMs');
  if (timeoutMs > 2 ** 31 - 1) throw outOfRange('options.timeoutMs', '<= 2 ** 31 - 1', timeoutMs);
  const cacheSize = o.cacheSize === undefined ? 16 * chunkSize : toLength(o.cacheSize, 'options.cacheSize', true);
  const onError = o.onError ?? 'sigbus';
  if (onError !== 'sigbus' && onError !== 'zeropage') throw invalidArgType('options.onError', "'sigbus' or 'zeropage'", onError);
  return {
    read: read as CustomRead, size, open: null, chunkSize, concurrency, retries, retryDelayMs, timeoutMs, cacheSize,
    onError, label: 'PageSource.custom', ...extra,
  };
}

/**
 * One open() of a source (its size, for http its ETag), bounded by the source's timeoutMs even
 * if open() ignores its signal: PageSource.ready(). Faults go through the server's retries.
 */
export async function openWithin(spec: CustomSpec): Promise<SourceInfo> {
  const ac = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = sourceError('ERR_UFFD_SOURCE_TIMEOUT', `${spec.label}: no answer within ${spec.timeoutMs} ms`, true);
      ac.abort(err);
      reject(err);
    }, spec.timeoutMs);
  });
  try {
    return await Promise.race([spec.open!(ac.signal), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error of a source, coded; `retryable: false` stops the retries (a changed object). */
export function sourceError(code: string, message: string, retryable?: boolean, extra: object = {}): Error {
  const e = Object.assign(codedError(code, message), extra);
  if (retryable !== undefined) Object.assign(e, { retryable });
  return e;
}

/** The counters shared by the custom sources of one uffd. */
export class SourceCounters {
  faults = 0;
  reads = 0;
  bytesRead = 0;
  deduplicated = 0;
  cacheHits = 0;
  retries = 0;
  timeouts = 0;
  failures = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly latency = new FaultStats();

  snapshot(): SourceStats {
    const { faults, reads, bytesRead, deduplicated, cacheHits, retries, timeouts, failures, inFlight, maxInFlight } = this;
    return {
      faults, reads, bytesRead, deduplicated, cacheHits, retries, timeouts, failures, inFlight, maxInFlight,
      latencyNs: { p50: this.latency.percentile(0.5), p99: this.latency.percentile(0.99) },
    };
  }
}
