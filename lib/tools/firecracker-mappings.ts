/**
 * What a Firecracker handshake says and why a VM cannot be served: the JSON body of mappings
 * Firecracker sends with its userfaultfd, checked against the memory file and the page sizes
 * this machine serves, and the VmError kinds the handler reports (docs/firecracker.md).
 * Used by firecracker-handler.ts.
 */
import { probe } from '../core/backend';
import { HUGE_PAGE_SIZE } from '../base/constants';

/** Why a VM could not be served. */
export type FailureKind = 'bad-mapping' | 'missing-file' | 'page-size' | 'source' | 'shutdown';

const FAILURE_CODES: Record<FailureKind, string> = {
  'bad-mapping': 'ERR_FC_BAD_MAPPING',
  'missing-file': 'ERR_FC_MISSING_FILE',
  'page-size': 'ERR_FC_PAGE_SIZE',
  source: 'ERR_FC_SOURCE',
  shutdown: 'ERR_FC_SHUTDOWN',
};

export interface Mapping {
  base: bigint;
  size: number;
  offset: number;
  pageSize: number;
}

export class VmError extends Error {
  constructor(readonly kind: FailureKind, message: string) {
    super(message);
  }
  get code(): string {
    return FAILURE_CODES[this.kind];
  }
}

/** The byte offsets at which each top-level JSON value of `text` ends. */
function jsonValueEnds(text: string): number[] {
  const ends: number[] = [];
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
    } else if (ch === '[' || ch === '{') {
      depth++;
    } else if ((ch === ']' || ch === '}') && --depth === 0) {
      ends.push(i + 1);
    }
  }
  return ends;
}

/**
 * The mappings array of a handshake body. A body sent again with the fd (a retried send)
 * arrives after the first copy: the last whole JSON value counts.
 */
export function parseBody(payload: Buffer): unknown {
  const text = payload.toString('utf8').replace(/\0+$/, '').trim();
  try {
    return JSON.parse(text);
  } catch (e) {
    const ends = jsonValueEnds(text);
    const start = ends.length > 1 ? ends[ends.length - 2] : -1;
    if (start >= 0) {
      try {
        return JSON.parse(text.slice(start, ends[ends.length - 1]));
      } catch {
        // reported below
      }
    }
    throw new VmError('bad-mapping', `the body is not JSON (${(e as Error).message}): ${JSON.stringify(text.slice(0, 80))}`);
  }
}

/** Page sizes this machine can serve: the base page, and 2 MiB where the kernel has hugetlb uffd. */
export function servablePageSizes(basePage: number): number[] {
  const p = probe({ backend: 'native' });
  return p.features.includes('MISSING_HUGETLBFS') ? [basePage, HUGE_PAGE_SIZE] : [basePage];
}

/**
 * page_size, or the deprecated page_size_kib, which Firecracker filled with bytes: a value
 * that is a servable size in bytes is bytes; one that is only servable times 1024 is KiB.
 */
function mappingPageSize(m: Record<string, unknown>, where: string, servable: number[]): number {
  const raw = m.page_size !== undefined ? m.page_size : m.page_size_kib;
  if (raw === undefined) return servable[0]; // releases before page sizes were sent
  if (!Number.isSafeInteger(raw) || (raw as number) <= 0) {
    throw new VmError('bad-mapping', `${where}: page_size is not a positive integer (${JSON.stringify(raw)})`);
  }
  const v = raw as number;
  if (servable.includes(v)) return v;
  if (m.page_size === undefined && servable.includes(v * 1024)) return v * 1024;
  throw new VmError('page-size', `${where}: page size ${v} is not supported (this handler serves ${servable.join(' or ')}-byte pages)`);
}

/** The mappings of Firecracker's JSON body, checked against the memory file. Throws VmError. */
export function parseMappings(body: unknown, memSize: number, servable: number[]): Mapping[] {
  if (!Array.isArray(body) || body.length === 0) throw new VmError('bad-mapping', 'the body is not a non-empty array of mappings');
  const mappings = body.map((m: unknown, i: number) => {
    const where = `mapping ${i}`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new VmError('bad-mapping', `${where} is not an object`);
    const o = m as Record<string, unknown>;
    for (const name of ['base_host_virt_addr', 'size', 'offset']) {
      const v = o[name];
      if (!Number.isSafeInteger(v) || (v as number) < 0) {
        throw new VmError('bad-mapping', `${where}: ${name} is not a non-negative integer (${JSON.stringify(v)})`);
      }
    }
    const base = o.base_host_virt_addr as number;
    const size = o.size as number;
    const offset = o.offset as number;
    const pageSize = mappingPageSize(o, where, servable);
    if (size === 0 || size % pageSize !== 0 || base % pageSize !== 0) {
      throw new VmError('bad-mapping', `${where}: base_host_virt_addr and size must be multiples of its page size (${pageSize})`);
    }
    if (offset + size > memSize) {
      throw new VmError('bad-mapping', `${where}: offset + size (${offset + size}) is past the memory file (${memSize} bytes)`);
    }
    return { base: BigInt(base), size, offset, pageSize };
  });
  const sorted = [...mappings].sort((a, b) => (a.base < b.base ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1].base + BigInt(sorted[i - 1].size) > sorted[i].base) throw new VmError('bad-mapping', 'two mappings overlap');
  }
  return mappings;
}

/** `CODE message`, without saying the code twice (UffdError messages start with it). */
export function describeError(e: Error & { code?: string }): string {
  return e.code === undefined || e.message.startsWith(e.code) ? e.message : `${e.code} ${e.message}`;
}

/** Why serve() failed, as the handler reports it. */
export function classifyServeError(e: Error & { code?: string; syscall?: string }, memoryFile: string): VmError {
  if (e.code === 'ENOENT' && e.syscall === 'open') return new VmError('missing-file', `the memory file ${memoryFile} is missing`);
  if (e.syscall === 'UFFDIO_REGISTER' || e.code === 'ERR_OUT_OF_RANGE' || e.code === 'ERR_INVALID_ARG_TYPE') {
    return new VmError('bad-mapping', `its mappings cannot be served: ${describeError(e)}`);
  }
  return new VmError('source', `the memory file cannot be served: ${describeError(e)}`);
}
