/**
 * PageSource.http: a custom source (lib/sources/custom-source.ts) whose read is an HTTP Range request
 * made with the platform's fetch (undici in Node; it keeps connections alive per origin).
 *
 * - Size: from HEAD's Content-Length; where HEAD is refused (a presigned S3 URL is signed for
 *   GET only: 403) or says no length, from the Content-Range of a one-byte ranged GET.
 * - Versions: the object's strong ETag is pinned by the first answer (or options.etag) and sent
 *   as If-Match; every answer must carry it (none is a change too), and every Content-Range's
 *   total must be the size learned. An object replaced mid-restore fails with
 *   ERR_UFFD_SOURCE_CHANGED, never retried: two versions are never mixed in one region.
 * - Bodies: at most the bytes asked for are read, then the rest is cancelled (a 206 whose body
 *   never ends costs one window, not memory until the timeout).
 * - Redirects are followed here, not by fetch: within the origin as fetch would; to another
 *   origin refused (ERR_UFFD_SOURCE_REDIRECT), or with `crossOriginRedirects: 'follow'`
 *   followed without any of the caller's headers (an API key must not reach another host).
 * - A server that ignores Range (200 with the whole body) is refused with
 *   ERR_UFFD_SOURCE_NO_RANGE, unless the body is exactly the bytes asked for (a source that fits
 *   in one window): slicing would download the whole object once per window.
 * - 408, 429, 5xx and dropped connections are retried (with backoff, by the custom source);
 *   other 4xx are not.
 */
import { toLength, toOptions } from '../base/args';
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
  /**
   * A redirect to another origin: 'refuse' (default, ERR_UFFD_SOURCE_REDIRECT), or 'follow'
   * without sending it any of `headers`. Redirects within the origin are always followed.
   */
  crossOriginRedirects?: 'refuse' | 'follow';
}

/** Redirects followed at most per request, as fetch itself does. */
const MAX_REDIRECTS = 20;

export const HTTP_OPTION_KEYS = keysOf<HttpSourceOptions>({
  headers: true, size: true, etag: true, chunkSize: true, concurrency: true, retries: true, retryDelayMs: true, timeoutMs: true,
  cacheSize: true, onError: true, crossOriginRedirects: true,
});

export function httpSpec(url: unknown, options: unknown, pageSize: number): CustomSpec {
  const u = toUrl(url);
  const o = toOptions<HttpSourceOptions>(options, 'options');
  const h = o.headers;
  if (h !== undefined && typeof h !== 'function' && (h === null || typeof h !== 'object')) {
    throw invalidArgType('options.headers', 'an object or a function returning one', h);
  }
  if (o.etag !== undefined && typeof o.etag !== 'string') throw invalidArgType('options.etag', 'of type string', o.etag);
  const redirects = o.crossOriginRedirects ?? 'refuse';
  if (redirects !== 'refuse' && redirects !== 'follow') {
    throw invalidArgType('options.crossOriginRedirects', "'refuse' or 'follow'", o.crossOriginRedirects);
  }
  const size = o.size === undefined ? undefined : toLength(o.size, 'options.size', true);
  const client = new HttpObject(u, h, o.etag, redirects === 'follow', size);
  const spec = customSpec((offset: number, length: number, opts: { signal: AbortSignal }) =>
    client.read(offset, length, opts.signal), o, pageSize, {
    open: (signal) => client.open(signal),
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

  constructor(
    private readonly url: URL,
    private readonly headers: HttpSourceOptions['headers'],
    private etag: string | undefined,
    private readonly followCrossOrigin: boolean,
    size: number | undefined,
  ) {
    // Never the query: a presigned URL's signature must not end up in logs.
    this.label = `PageSource.http(${url.origin}${url.pathname})`;
    // A size given is the size pinned: no HEAD is made, and every Content-Range must agree.
    if (size !== undefined) this.info = { size, etag };
  }

  /**
   * Size and ETag, learned once. Each call that finds them unknown makes its own request under
   * its own signal: a probe that never answers is aborted with its attempt, and the next
   * attempt (or ready()) asks again instead of joining it.
   */
  async open(signal: AbortSignal): Promise<SourceInfo> {
    if (this.info) return this.info;
    const info = await this.probe(signal);
    this.info ??= info;
    return this.info;
  }

  async read(offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
    const res = await this.request('GET', signal, offset, offset + length - 1);
    if (res.status === 200) {
      const total = contentLength(res);
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
      const size = this.info?.size;
      if (m[3] !== '*' && size !== undefined && Number(m[3]) !== size) {
        await discard(res);
        throw this.changed(`Content-Range total ${m[3]}, pinned size ${size}`);
      }
    } else {
      await this.refuse(res, `bytes ${offset}-${offset + length - 1}`);
    }
    this.pin(res);
    try {
      return await readBody(res, length);
    } catch (err) {
      throw this.networkError(err, signal);
    }
  }

  /** HEAD, or a one-byte GET where HEAD is not allowed. */
  private async probe(signal: AbortSignal): Promise<SourceInfo> {
    let res = await this.request('HEAD', signal);
    let size = res.ok ? contentLength(res) : NaN;
    // A HEAD without a length (chunked, or a proxy that drops it) says nothing of the size: 0
    // would serve the whole region as zeros. The ranged GET's Content-Range says it.
    if ((res.ok && Number.isNaN(size)) || [400, 403, 405, 501].includes(res.status)) {
      await discard(res);
      res = await this.request('GET', signal, 0, 0);
      const range = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
      if (res.status === 206 && range) size = Number(range[1]);
      else if (res.status === 200) size = contentLength(res);
      else if (res.status === 416) size = 0; // an empty object has no byte 0
      else return this.refuse(res, 'its size');
      await discard(res);
    } else if (!res.ok) {
      return this.refuse(res, 'its size');
    }
    if (!Number.isSafeInteger(size) || size < 0) {
      throw sourceError('ERR_UFFD_SOURCE_HTTP', `${this.label}: the server gave no usable size`, false);
    }
    this.pin(res);
    return { size, etag: this.etag };
  }

  /**
   * One request, its redirects followed here: within the origin with every header, to another
   * origin only with `crossOriginRedirects: 'follow'` and then without the caller's headers
   * (Range and If-Match are this source's own, and go on).
   */
  private async request(method: string, signal: AbortSignal, first?: number, last?: number): Promise<Response> {
    const own = new Headers();
    if (first !== undefined) own.set('range', `bytes=${first}-${last}`);
    // If-Match compares strongly: a weak ETag (W/"...") would fail every request.
    if (this.etag !== undefined && !this.etag.startsWith('W/')) own.set('if-match', this.etag);
    let url = this.url;
    let callers = true;
    for (let hop = 0; ; hop++) {
      const h = new Headers(callers ? (typeof this.headers === 'function' ? await this.headers() : this.headers) : undefined);
      own.forEach((value, name) => h.set(name, value));
      let res: Response;
      try {
        res = await fetch(url, { method, headers: h, signal, redirect: 'manual' });
      } catch (err) {
        throw this.networkError(err, signal);
      }
      const location = res.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(res.status) || location === null) return res;
      await discard(res);
      const next = new URL(location, url);
      if (hop + 1 >= MAX_REDIRECTS || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
        throw sourceError('ERR_UFFD_SOURCE_REDIRECT', `${this.label}: ${hop + 1 >= MAX_REDIRECTS ? `more than ${MAX_REDIRECTS} redirects` : `a redirect to ${next.protocol}`}`, false);
      }
      if (next.origin !== this.url.origin) {
        if (!this.followCrossOrigin) {
          throw sourceError('ERR_UFFD_SOURCE_REDIRECT', `${this.label}: redirected to another origin (${next.origin}); ` +
            "pass crossOriginRedirects: 'follow' to follow it without the request's headers", false, { status: res.status });
        }
        callers = false;
      }
      url = next;
    }
  }

  /** The first answer's ETag is the version served; a later different one is a new object. */
  private pin(res: Response): void {
    const tag = res.headers.get('etag');
    if (tag === null) {
      // With a version pinned, an answer that names none could be any version.
      if (this.etag !== undefined) {
        void discard(res);
        throw this.changed(`no ETag, pinned ${this.etag}`);
      }
      return;
    }
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

/** The Content-Length header as a number; NaN when it is missing or not a number. */
function contentLength(res: Response): number {
  const v = res.headers.get('content-length');
  return v === null || !/^\d+$/.test(v.trim()) ? NaN : Number(v);
}

/**
 * The body, at most `length` bytes of it: the rest is cancelled unread. A body of exactly its
 * Content-Length is read to its end instead, so that its connection is kept alive.
 */
async function readBody(res: Response, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  if (res.body === null) return out.subarray(0, 0);
  const reader = res.body.getReader();
  let got = 0;
  let ended = false;
  try {
    while (got < length) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      const n = Math.min(value.byteLength, length - got);
      out.set(value.subarray(0, n), got);
      got += n;
    }
    if (!ended && contentLength(res) === length) ended = (await reader.read()).done === true;
  } finally {
    if (!ended) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return out.subarray(0, got);
}

/** Drops a body unread, so that the connection can be reused or closed. */
async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // already consumed or torn down: nothing to free
  }
}
