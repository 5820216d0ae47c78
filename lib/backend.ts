/** The two backends and the choice between them. */
import type { Region } from './region';
import type { BackendChoice, BackendName, MapOptions, OpenOptions, ProbeResult } from './types';
import type { Userfaultfd } from './userfaultfd';
import { invalidArgType } from './errors';
import { binding } from './native';

export interface Backend {
  readonly name: BackendName;
  probe(): ProbeResult;
  open(options: OpenOptions): Userfaultfd;
  fromFd(fd: number, options: OpenOptions): Userfaultfd;
  mapRegion(length: number, options: MapOptions): Region;
}

const backends = new Map<BackendName, Backend>();

export function registerBackend(b: Backend): void {
  backends.set(b.name, b);
}

function get(name: BackendName): Backend {
  const b = backends.get(name);
  if (!b) throw new Error(`userfaultfd: backend '${name}' is not loaded`);
  return b;
}

/** USERFAULTFD_BACKEND=simulator|native overrides 'auto' (for deterministic test runs). */
function forced(): BackendName | null {
  const v = process.env.USERFAULTFD_BACKEND;
  return v === 'simulator' || v === 'native' ? v : null;
}

export function chooseBackend(choice: unknown = 'auto'): Backend {
  if (choice === undefined) choice = 'auto';
  if (choice !== 'auto' && choice !== 'native' && choice !== 'simulator') {
    throw invalidArgType('options.backend', "'auto', 'native' or 'simulator'", choice);
  }
  if (choice !== 'auto') return get(choice);
  const f = forced();
  if (f) return get(f);
  const native = get('native').probe();
  if (native.available) return get('native');
  warnFallback(native);
  warnSimulator(native);
  return get('simulator');
}

let warnedSimulator = false;

/**
 * The kernel refused every userfaultfd (seccomp, no device, no CONFIG_USERFAULTFD): 'auto'
 * serves from the simulator, where serve() loads nothing lazily and direct touches never fault.
 * Said once per process, with the reason and the fix (probe().reason has them too).
 */
function warnSimulator(native: ProbeResult): void {
  if (warnedSimulator || process.platform !== 'linux' || binding === null) return;
  warnedSimulator = true;
  const [reason, fix] = (native.reason ?? 'the kernel refused userfaultfd').split('; fix: ');
  process.emitWarning(`userfaultfd: using the simulator backend because ${reason}`, {
    code: 'USERFAULTFD_SIMULATOR',
    detail: `${fix ? `Fix: ${fix}. ` : ''}Run npx userfaultfd doctor for details; set USERFAULTFD_BACKEND=simulator to choose the simulator on purpose.`,
  });
}

let warned = false;

/**
 * On Linux the kernel is expected: falling back because the addon did not load is never
 * silent (a broken install would otherwise pass every test on the simulator).
 */
function warnFallback(native: ProbeResult): void {
  if (warned || process.platform !== 'linux' || binding !== null) return;
  warned = true;
  process.emitWarning(`userfaultfd: using the simulator backend because ${native.reason}`, {
    code: 'USERFAULTFD_NATIVE_UNAVAILABLE',
    detail: 'Rebuild the addon (npm rebuild userfaultfd), or set USERFAULTFD_BACKEND=simulator to choose the simulator on purpose.',
  });
}

/** What `backend: 'auto'` would use here, and why. */
export function probe(options: { backend?: BackendChoice } = {}): ProbeResult {
  const choice = options.backend ?? 'auto';
  if (choice !== 'auto') return get(choice).probe();
  const f = forced();
  const native = get('native').probe();
  if (f === 'simulator' || (f === null && !native.available)) {
    if (f === null) warnFallback(native);
    const sim = get('simulator').probe();
    const reason = f === 'simulator' ? 'USERFAULTFD_BACKEND=simulator' : native.reason;
    return { ...sim, reason, unprivileged: native.unprivileged };
  }
  return native;
}
