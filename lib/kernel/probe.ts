/** What the kernel offers here, learned without touching any uffd the user holds. */
import * as fs from 'fs';
import { featureNames, ioctlNames } from '../base/constants';
import { binding, loadError } from '../base/native';
import type { ProbeResult } from '../base/types';
import { UffdError } from '../base/errors';
import { OPEN_ORDER, OpenAttempt, tryOpen } from './attempts';
import { kernelAtLeast } from './environment';
import { explainRefusal, explainUserModeOnly, Refusal, refusalText } from './refusal';

export interface KernelOffer {
  via: 'syscall' | 'dev-userfaultfd';
  api: number;
  features: number;
  ioctls: bigint;
  /** Only a UFFD_USER_MODE_ONLY fd could be opened (no CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=0). */
  userModeOnly: boolean;
}

/** Opens a uffd by the syscall, or by /dev/userfaultfd when the syscall is refused. */
export function openKernelFd(userModeOnly: boolean): { fd: number; via: 'syscall' | 'dev-userfaultfd' } {
  const b = binding!;
  try {
    return { fd: b.openSyscall(userModeOnly), via: 'syscall' };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'EPERM' && code !== 'ENOSYS') throw e;
    try {
      return { fd: b.openDevice(userModeOnly), via: 'dev-userfaultfd' };
    } catch (devError) {
      (e as Error).message += `; /dev/userfaultfd: ${(devError as Error).message}` + fixHint(code);
      throw e;
    }
  }
}

function fixHint(code: string): string {
  return code === 'EPERM'
    ? ' (fix: run with CAP_SYS_PTRACE, or sysctl -w vm.unprivileged_userfaultfd=1, or grant /dev/userfaultfd with setfacl -m u:$USER:rw /dev/userfaultfd, or open with { userModeOnly: true })'
    : ' (the kernel or its seccomp profile lacks userfaultfd)';
}

let cachedOffer: KernelOffer | Error | null = null;
let offerAttempts: OpenAttempt[] = [];
/** Why only UFFD_USER_MODE_ONLY, worked out once: 'auto' probes on every open() and Region.map(). */
let userModeOnlyWhy: Refusal | null = null;

function userModeOnlyRefusal(): Refusal {
  userModeOnlyWhy ??= explainUserModeOnly(offerAttempts);
  return userModeOnlyWhy;
}

/**
 * The kernel's full offer, learned on throwaway fds in the order 'auto' opens: a full uffd
 * (syscall, then /dev/userfaultfd), else a UFFD_USER_MODE_ONLY one. Asked with features 0, the
 * kernel lists all it supports.
 */
export function kernelOffer(): KernelOffer {
  if (cachedOffer === null) {
    offerAttempts = [];
    for (const [method, userModeOnly] of OPEN_ORDER) {
      const { attempt, reply } = tryOpen(method, userModeOnly);
      offerAttempts.push(attempt);
      if (reply) {
        cachedOffer = { via: method, api: reply.api, features: reply.features, ioctls: reply.ioctls, userModeOnly };
        break;
      }
    }
    if (cachedOffer === null) {
      // Thrown as the syscall's own error (EPERM, ENOSYS...), worded with the cause and the fix.
      const first = offerAttempts[0];
      cachedOffer = new UffdError(refusalText(explainRefusal(offerAttempts)), first.code ?? 'EINVAL', first.errno ?? 0,
        first.syscall ?? 'userfaultfd');
    }
  }
  if (cachedOffer instanceof Error) throw cachedOffer;
  return cachedOffer;
}

let warnedUserModeOnly = false;

/**
 * Whether open() asks for UFFD_USER_MODE_ONLY: as told, or (not told) when the kernel refuses a
 * full uffd here. The fallback is never silent: a one-time process warning names what it costs.
 */
export function userModeOnlyFor(asked: boolean | undefined): boolean {
  if (asked !== undefined) return asked;
  const offer = kernelOffer();
  if (!offer.userModeOnly) return false;
  if (!warnedUserModeOnly) {
    warnedUserModeOnly = true;
    const r = userModeOnlyRefusal();
    process.emitWarning(`userfaultfd: ${r.reason}`, {
      code: 'USERFAULTFD_USER_MODE_ONLY',
      detail: `For a full userfaultfd: ${r.fix}. Pass { userModeOnly: true } to choose this on purpose (no warning), or { userModeOnly: false } to fail instead.`,
    });
  }
  return true;
}

function unprivileged(): ProbeResult['unprivileged'] {
  try {
    if (fs.readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() === '1') return 'allowed';
  } catch {
    return 'denied';
  }
  return kernelAtLeast(5, 11) ? 'user-mode-only' : 'denied';
}

export function probeKernel(): ProbeResult {
  const pageSize = binding ? binding.constants.pageSize : 4096;
  const base = { backend: 'native' as const, api: 0, features: [], ioctls: [], pageSize };
  if (process.platform !== 'linux') {
    return { ...base, available: false, reason: `userfaultfd is Linux-only (this is ${process.platform})`, unprivileged: 'denied' };
  }
  if (!binding) {
    return { ...base, available: false, reason: `the native addon failed to load: ${loadError}`, unprivileged: unprivileged() };
  }
  try {
    const o = kernelOffer();
    const offer = {
      ...base, available: true, via: o.via, api: o.api, userModeOnly: o.userModeOnly,
      features: featureNames(o.features), ioctls: ioctlNames(o.ioctls), unprivileged: unprivileged(),
    };
    // Only faults raised in user mode reach this process's uffds: open() falls back to
    // UFFD_USER_MODE_ONLY (with a warning), and the reason says what that costs.
    return o.userModeOnly ? { ...offer, reason: refusalText(userModeOnlyRefusal()) } : offer;
  } catch (e) {
    return { ...base, available: false, reason: `userfaultfd refused: ${(e as Error).message}`, unprivileged: unprivileged() };
  }
}
