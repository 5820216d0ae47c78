/**
 * PageSource.http: a custom source (lib/sources/custom-source.ts) whose read is an HTTP Range request
 * made with the platform's fetch (undici in Node; it keeps connections alive per origin).
 *
 * - Size: from HEAD; where HEAD is refused (a presigned S3 URL is signed for GET only: 403), from
 *   the Content-Range of a one-byte ranged GET.
 * - Versions: the object's strong ETag is pinned by the first answer (or options.etag) and sent
 *   as If-Match; every answer's ETag is compared too. An object replaced mid-restore fails with
 *   ERR_UFFD_SOURCE_CHANGED, never retried: two versions are never mixed in one region.
 * - A server that ignores Range (200 with the whole body) is refused with
 *   ERR_UFFD_SOURCE_NO_RANGE, unless the body is exactly the bytes asked for (a source that fits
 *   in one window): slicing would download the whole object once per window.
 * - 408, 429, 5xx and dropped connections are retried (with backoff, by the custom source);
 *   other 4xx are not.
 */
import { toOptions } from '../base/args';
import { keysOf } from '../base/option-keys';
import { CustomSourceOptions, CustomSpec, customSpec, sourceError, SourceInfo } from './custom-source';
import { invalidArgType } from '../base/errors';

type HeaderMap = Record<string, string>;

export interface HttpSourceOptions extends Omit<CustomSourceOptions, 'size'> {
  /** Request headers, or a function returning them per request (short-lived tokens). */
  headers?: HeaderMap | (() => HeaderMap | Promise<HeaderMap>);
  /** The object's size, when known: no HEAD is made. */
  size?: number;
  /** The ETag to pin (a version the caller knows); by default the first answer's. */
  etag?: string;
}

export const HTTP_OPTION_KEYS = keysOf<HttpSourceOptions>({
  headers: true, size: true, etag: true, chunkSize: true, concurrency: true, retries: true, retryDelayMs: true, timeoutMs: true,
  cacheSize: true, onError: true,
});

export function httpSpec(url: unknown, options: unknown, pageSize: number): CustomSpec {
  const u = toUrl(url);
  const o = toOptions<HttpSourceOptions>(options, 'options');
  const h = o.headers;
  if (h !== undefined && typeof h !== 'function' && (h === null || typeof h !== 'object')) {
    throw invalidArgType('options.headers', 'an object or a function returning one', h);
  }
  if (o.etag !== undefined && typeof o.etag !== 'string') throw invalidArgType('options.etag', 'of type string', o.etag);
  const client = new HttpObject(u, h, o.etag);
  const spec = customSpec((offset: number, length: number, opts: { signal: AbortSignal }) =>
    client.read(offset, length, opts.signal), o, pageSize, {
    open: (signal) => client.open(signal, o.size),
    label: client.label,
  });
  if (o.size !== undefined) spec.size = o.size;
  return spec;
}

function toUrl(url: unknown): URL {
  let u: URL;
  try {
    u = url instanceof URL ? url : new URL(url as string);
  } catch {
    throw invalidArgType('url', 'an absolute http: or https: URL', url);
  }
  if (typeof url !== 'string' && !(url instanceof URL)) throw invalidArgType('url', 'an absolute http: or https: URL', url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidArgType('url', 'an absolute http: or https: URL', url);
  return u;
}

/** One object at one URL; its pinned version is shared by every serve() of this source. */
class HttpObject {
  readonly label: string;
  private info: SourceInfo | null = null;
  private opening: Promise<SourceInfo> | null = null;

  constructor(
    private readonly url: URL,
    private readonly headers: HttpSourceOptions['headers'],
    private etag: string | undefined,
  ) {
    // Never the query: a presigned URL's signature must not end up in logs.
    this.label = `PageSource.http(${url.origin}${url.pathname})`;
  }

  /** Size and ETag, learned once (concurrent callers share the request). */
  open(signal: AbortSignal, size: number | undefined): Promise<SourceInfo> {
    if (this.info) return Promise.resolve(this.info);
    if (size !== undefined) {
      this.info = { size, etag: this.etag };
      return Promise.resolve(this.info);
    }
    this.opening ??= this.probe(signal).then((info) => {
      this.info = info;
      return info;
    }, (err) => {
      this.opening = null;
      throw err;
    });
    return this.opening;
  }

  async read(offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
    const res = await this.request('GET', signal, offset, offset + length - 1);
    if (res.status === 200) {
      const total = Number(res.headers.get('content-length'));
      if (offset !== 0 || total !== length) {
        await discard(res);
        throw sourceError('ERR_UFFD_SOURCE_NO_RANGE', `${this.label}: the server ignored the Range header ` +
          `(200 with the whole ${total || 'unknown'}-byte object for bytes ${offset}-${offset + length - 1})`, false);
      }
    } else if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        await discard(res);
        throw sourceError('ERR_UFFD_SOURCE_HTTP', `${this.label}: asked for bytes from ${offset}, ` +
          `got Content-Range '${res.headers.get('content-range')}'`, false, { status: 206 });
      }
    } else {
      await this.refuse(res, `bytes ${offset}-${offset + length - 1}`);
    }
    this.pin(res);
    try {
      return new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      throw this.networkError(err, signal);
    }
  }

  /** HEAD, or a one-byte GET where HEAD is not allowed. */
  private async probe(signal: AbortSignal): Promise<SourceInfo> {
    let res = await this.request('HEAD', signal);
    let size: number;
    if (res.ok) {
      size = Number(res.headers.get('content-length'));
    } else if ([400, 403, 405, 501].includes(res.status)) {
      await discard(res);
      res = await this.request('GET', signal, 0, 0);
      const range = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
      if (res.status === 206 && range) size = Number(range[1]);
      else if (res.status === 200) size = Number(res.headers.get('content-length'));
      else if (res.status === 416) size = 0; // an empty object has no byte 0
      else return this.refuse(res, 'its size');
      await discard(res);
    } else {
      return this.refuse(res, 'its size');
    }
    if (!Number.isSafeInteger(size) || size < 0) {
      throw sourceError('ERR_UFFD_SOURCE_HTTP', `${this.label}: the server gave no usable size`, false);
    }
    this.pin(res);
    return { size, etag: this.etag };
  }

  private async request(method: string, signal: AbortSignal, first?: number, last?: number): Promise<Response> {
    const h = new Headers(typeof this.headers === 'function' ? await this.headers() : this.headers);
    if (first !== undefined) h.set('range', `bytes=${first}-${last}`);
    // If-Match compares strongly: a weak ETag (W/"...") would fail every request.
    if (this.etag !== undefined && !this.etag.startsWith('W/')) h.set('if-match', this.etag);
    try {
      return await fetch(this.url, { method, headers: h, signal });
    } catch (err) {
      throw this.networkError(err, signal);
    }
  }

  /** The first answer's ETag is the version served; a later different one is a new object. */
  private pin(res: Response): void {
    const tag = res.headers.get('etag');
    if (tag === null) return;
    if (this.etag === undefined) {
      this.etag = tag;
      if (this.info) this.info.etag = tag;
    } else if (tag !== this.etag) {
      void discard(res);
      throw this.changed(`ETag ${tag}, pinned ${this.etag}`);
    }
  }

  /** A non-2xx answer as a coded error: retried for 408, 429 and 5xx only. */
  private async refuse(res: Response, what: string): Promise<never> {
    await discard(res);
    if (res.status === 412 || res.status === 416) {
      throw this.changed(`${res.status} ${res.statusText} for ${what}`);
    }
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    throw sourceError('ERR_UFFD_SOURCE_HTTP', `${this.label}: ${res.status} ${res.statusText} for ${what}`, retryable,
      { status: res.status });
  }

  private changed(detail: string): Error {
    return sourceError('ERR_UFFD_SOURCE_CHANGED', `${this.label}: the object changed during the restore (${detail}); ` +
      'pages of two versions are never mixed', false);
  }

  private networkError(err: unknown, signal: AbortSignal): Error {
    if (signal.aborted) return signal.reason instanceof Error ? signal.reason : (err as Error);
    const e = err as Error & { cause?: Error & { code?: string } };
    const why = e.cause?.code ?? e.cause?.message ?? e.message;
    return sourceError('ERR_UFFD_SOURCE_HTTP', `${this.label}: ${e.message} (${why})`, true, { cause: e });
  }
}

/** Drops a body unread, so that the connection can be reused or closed. */
async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // already consumed or torn down: nothing to free
  }
}
