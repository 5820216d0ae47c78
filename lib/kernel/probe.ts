/** What the kernel offers here, learned without touching any uffd the user holds. */
import * as fs from 'fs';
import * as os from 'os';
import { featureNames, ioctlNames } from '../constants';
import { binding, loadError } from '../native';
import type { ProbeResult } from '../types';

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
let userModeOnlyReason = '';

/** The kernel's full offer: a throwaway fd asked with features 0 (the kernel lists all it supports). */
export function kernelOffer(): KernelOffer {
  if (cachedOffer === null) {
    try {
      const { fd, via } = openKernelFd(false);
      try {
        const r = binding!.apiHandshake(fd, 0);
        cachedOffer = { via, api: r.api, features: r.features, ioctls: r.ioctls, userModeOnly: false };
      } finally {
        binding!.closeFd(fd);
      }
    } catch (e) {
      if (binding) {
        // Without CAP_SYS_PTRACE the user-mode-only flavour may still be open to us.
        try {
          const { fd, via } = openKernelFd(true);
          try {
            const r = binding.apiHandshake(fd, 0);
            cachedOffer = { via, api: r.api, features: r.features, ioctls: r.ioctls, userModeOnly: true };
            userModeOnlyReason = (e as Error).message;
          } finally {
            binding.closeFd(fd);
          }
        } catch {
          cachedOffer = e as Error;
        }
      } else {
        cachedOffer = e as Error;
      }
    }
  }
  if (cachedOffer instanceof Error) throw cachedOffer;
  return cachedOffer;
}

function unprivileged(): ProbeResult['unprivileged'] {
  try {
    if (fs.readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() === '1') return 'allowed';
  } catch {
    return 'denied';
  }
  const [major, minor] = os.release().split('.').map((x) => parseInt(x, 10));
  return major > 5 || (major === 5 && minor >= 11) ? 'user-mode-only' : 'denied';
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
    if (o.userModeOnly) {
      // Only faults raised in user mode can be handled here: a default open() would fail, so
      // 'auto' chooses the simulator (for open() and Region.map() alike, so that they match);
      // { backend: 'native', userModeOnly: true } still reaches the kernel.
      return {
        ...base, available: false, via: o.via, api: o.api,
        features: featureNames(o.features), ioctls: ioctlNames(o.ioctls), unprivileged: unprivileged(),
        reason: `userfaultfd refused: ${userModeOnlyReason}; only { userModeOnly: true } userfaultfds can be opened here`,
      };
    }
    return {
      ...base, available: true, via: o.via, api: o.api,
      features: featureNames(o.features), ioctls: ioctlNames(o.ioctls), unprivileged: unprivileged(),
    };
  } catch (e) {
    return { ...base, available: false, reason: `userfaultfd refused: ${(e as Error).message}`, unprivileged: unprivileged() };
  }
}
