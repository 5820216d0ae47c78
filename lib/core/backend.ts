/**
 * The two backends and the choice between them. A backend registers itself (lib/kernel/,
 * lib/simulator/) with what it opens and maps; the class that asks names that type
 * (`chooseBackend<Userfaultfd>`, `chooseBackend<unknown, Region>`), so that this file names
 * neither class and both can import it.
 */
import type { BackendChoice, BackendName, MapOptions, OpenOptions, ProbeResult } from '../base/types';
import { invalidArgType } from '../base/errors';

/** `Uffd` is a Userfaultfd (core/userfaultfd.ts), `Mapped` a Region (core/region.ts). */
export interface Backend<Uffd = unknown, Mapped = unknown> {
  readonly name: BackendName;
  probe(): ProbeResult;
  open(options: OpenOptions): Uffd;
  fromFd(fd: number, options: OpenOptions): Uffd;
  mapRegion(length: number, options: MapOptions): Mapped;
  /**
   * The native backend: why 'auto' falls back to the simulator (`opening`: to open or map on
   * it, not just probe()), the first time (never a silent fallback on Linux); null when there
   * is nothing (more) to say.
   */
  fallbackWarning?(probe: ProbeResult, opening: boolean): FallbackWarning | null;
}

export interface FallbackWarning {
  code: string;
  message: string;
  detail: string;
}

const backends = new Map<BackendName, Backend>();

/** Both backends register Backend<Userfaultfd, Region>: what chooseBackend's callers take it for. */
export function registerBackend<Uffd, Mapped>(b: Backend<Uffd, Mapped>): void {
  backends.set(b.name, b);
}

function get<Uffd = unknown, Mapped = unknown>(name: BackendName): Backend<Uffd, Mapped> {
  const b = backends.get(name);
  if (!b) throw new Error(`userfaultfd: backend '${name}' is not loaded`);
  return b as Backend<Uffd, Mapped>;
}

/** USERFAULTFD_BACKEND=simulator|native overrides 'auto' (for deterministic test runs). */
function forced(): BackendName | null {
  const v = process.env.USERFAULTFD_BACKEND;
  return v === 'simulator' || v === 'native' ? v : null;
}

export function chooseBackend<Uffd = unknown, Mapped = unknown>(choice: unknown = 'auto'): Backend<Uffd, Mapped> {
  if (choice === undefined) choice = 'auto';
  if (choice !== 'auto' && choice !== 'native' && choice !== 'simulator') {
    throw invalidArgType('options.backend', "'auto', 'native' or 'simulator'", choice);
  }
  if (choice !== 'auto') return get(choice);
  const f = forced();
  if (f) return get(f);
  const native = get('native').probe();
  if (native.available) return get('native');
  warnFallback(native, true);
  return get('simulator');
}

function warnFallback(native: ProbeResult, opening: boolean): void {
  const w = get('native').fallbackWarning?.(native, opening);
  if (w) process.emitWarning(w.message, { code: w.code, detail: w.detail });
}

/** What `backend: 'auto'` would use here, and why. */
export function probe(options: { backend?: BackendChoice } = {}): ProbeResult {
  const choice = options.backend ?? 'auto';
  if (choice !== 'auto') return get(choice).probe();
  const f = forced();
  const native = get('native').probe();
  if (f === 'simulator' || (f === null && !native.available)) {
    if (f === null) warnFallback(native, false);
    const sim = get('simulator').probe();
    const reason = f === 'simulator' ? 'USERFAULTFD_BACKEND=simulator' : native.reason;
    return { ...sim, reason, unprivileged: native.unprivileged };
  }
  return native;
}
