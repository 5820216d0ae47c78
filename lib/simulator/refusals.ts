/**
 * What the simulator cannot model, in one table: asked for, it is refused at open() with
 * ERR_UFFD_UNSUPPORTED, never accepted and then silently never honoured (docs/simulator.md).
 * Every feature and option not listed here is modelled. JS thread only.
 */
import { FEATURE_NAMES, FeatureName } from '../base/constants';
import { codedError } from '../base/errors';
import type { OpenOptions, SelfFaultPolicy } from '../base/types';

/**
 * The features the simulator refuses, each with what a user would wait for in vain: none. Code
 * written for the kernel asks for EVENT_FORK and EVENT_REMAP (every Firecracker- or CRIU-style
 * handler does) and must run unchanged here, so both are accepted, and their events never occur:
 * simulated memory is not inherited by a child process, and nothing here moves a mapping. Nothing
 * behaves differently for it: a simulated program that never forks or remaps gets no such event
 * on the kernel either.
 */
export const REFUSED_FEATURES: Readonly<Partial<Record<FeatureName, string>>> = {};

/** The onSelfFault policies the simulator refuses, and why. */
export const REFUSED_SELF_FAULT_POLICIES: Readonly<Partial<Record<SelfFaultPolicy, string>>> = {
  sigbus: 'a touch of region.buffer raises no fault here, so it would read zeros where the kernel backend ' +
    'kills the thread with SIGBUS (the outcome this policy is chosen for)',
};

/** The features the simulator offers (its probe()). */
export const SIMULATED_FEATURES: FeatureName[] = FEATURE_NAMES.filter((n) => REFUSED_FEATURES[n] === undefined);

/** The refusal error: what was asked, why the simulator cannot honour it, and where it can be. */
function unsupported(what: string, why: string, detail: { feature?: FeatureName; option?: string }): Error {
  return Object.assign(codedError('ERR_UFFD_UNSUPPORTED',
    `The simulator backend does not support ${what}: ${why}. Use the native backend (Linux) for it`),
  { backend: 'simulator', ...detail });
}

/** Throws ERR_UFFD_UNSUPPORTED for the first feature or option of `options` the simulator refuses. */
export function refuseUnsimulated(features: readonly FeatureName[], options: OpenOptions): void {
  for (const name of features) {
    const why = REFUSED_FEATURES[name];
    if (why !== undefined) throw unsupported(`the feature ${name}`, why, { feature: name });
  }
  const policy = options.onSelfFault;
  const why = policy === undefined ? undefined : REFUSED_SELF_FAULT_POLICIES[policy];
  if (why !== undefined) throw unsupported(`onSelfFault '${policy}'`, why, { option: 'onSelfFault' });
}
