/**
 * Why 'auto' left the kernel for the simulator, said once per process as a warning. Only the
 * native backend knows which of its two failures it was: the addon did not load (a broken
 * install would otherwise pass every test on the simulator), or the kernel refused every
 * userfaultfd (seccomp, no device, no CONFIG_USERFAULTFD).
 */
import type { FallbackWarning } from '../core/backend';
import { binding } from '../base/native';
import type { ProbeResult } from '../base/types';

let said = false;

export function fallbackWarning(native: ProbeResult, opening: boolean): FallbackWarning | null {
  if (said || process.platform !== 'linux') return null;
  if (binding === null) {
    said = true;
    return {
      code: 'USERFAULTFD_NATIVE_UNAVAILABLE',
      message: `userfaultfd: using the simulator backend because ${native.reason}`,
      detail: 'Rebuild the addon (npm rebuild userfaultfd), or set USERFAULTFD_BACKEND=simulator to choose the simulator on purpose.',
    };
  }
  // probe() asks too: a refusal is only worth a warning when something is opened on it.
  if (!opening) return null;
  said = true;
  const [reason, fix] = (native.reason ?? 'the kernel refused userfaultfd').split('; fix: ');
  return {
    code: 'USERFAULTFD_SIMULATOR',
    message: `userfaultfd: using the simulator backend because ${reason}`,
    detail: `${fix ? `Fix: ${fix}. ` : ''}Run npx userfaultfd doctor for details; set USERFAULTFD_BACKEND=simulator to choose the simulator on purpose.`,
  };
}
