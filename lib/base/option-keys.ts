/**
 * Unknown option keys are refused, not ignored: `Userfaultfd.open({ nonblocking: true })` is a
 * TypeError (code ERR_UFFD_UNKNOWN_OPTION) naming the closest known key, before anything is
 * opened. A key whose value is undefined counts as absent, as it does for every known option.
 */
import type {
  ContinueOptions, CopyOptions, MapOptions, MoveOptions, OpenOptions, ReadSyncOptions, RefineOptions,
  RegisterOptions, ServeOptions, WakeOptions, WriteProtectOptions,
} from './types';

/**
 * The keys of an options interface, as a value. Written as a record of every key (`keysOf<T>({ a:
 * true, b: true })`) so that the compiler fails when a key is added to T and not here, or named
 * here and not in T.
 */
export function keysOf<T>(keys: Record<keyof Required<T>, true>): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/** The known keys of the options objects in lib/base/types.ts. */
export const OPTION_KEYS = {
  open: keysOf<OpenOptions>({ features: true, nonBlocking: true, userModeOnly: true, backend: true, onSelfFault: true, faultTimeoutMs: true }),
  register: keysOf<RegisterOptions>({ missing: true, wp: true, minor: true }),
  copy: keysOf<CopyOptions>({ dontWake: true, wp: true }),
  wake: keysOf<WakeOptions>({ dontWake: true }),
  writeProtect: keysOf<WriteProtectOptions>({ protect: true, dontWake: true }),
  continue: keysOf<ContinueOptions>({ dontWake: true, wp: true }),
  move: keysOf<MoveOptions>({ dontWake: true, allowSrcHoles: true }),
  serve: keysOf<ServeOptions>({ readahead: true, removed: true, pageSize: true, record: true, prefetch: true, workingSet: true }),
  workingSet: keysOf<RefineOptions>({ maxMiB: true, maxAge: true }),
  map: keysOf<MapOptions>({ shared: true, hugetlb: true, backend: true }),
  readSync: keysOf<ReadSyncOptions>({ max: true, timeoutMs: true }),
} as const;

/**
 * Throws ERR_UFFD_UNKNOWN_OPTION where `options` (an object; anything else is left to the type
 * checks that follow) has an own key outside `known`. `where` names the call ('Userfaultfd.open()'),
 * `name` the argument ('options', 'options.workingSet').
 */
export function checkOptionKeys(options: unknown, known: readonly string[], where: string, name = 'options'): void {
  if (options === null || typeof options !== 'object') return;
  for (const key of Object.keys(options)) {
    if (known.includes(key) || (options as Record<string, unknown>)[key] === undefined) continue;
    const near = closestKey(key, known);
    const hint = near === null ? `Known options: ${known.join(', ')}` : `Did you mean "${near}"?`;
    const e = new TypeError(`${where}: unknown option "${key}" in ${name}. ${hint}`);
    throw Object.assign(e, { code: 'ERR_UFFD_UNKNOWN_OPTION', option: key, suggestion: near ?? undefined });
  }
}

/** The known key nearest to `key` (case aside, edit distance), or null when none is near. */
export function closestKey(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
