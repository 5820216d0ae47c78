/**
 * Why the kernel refused a full (or any) userfaultfd, and the fix, in one line each: the text
 * of probe().reason and of the warnings 'auto' emits when it settles for less.
 */
import { findAttempt, OpenAttempt } from './attempts';
import { capSysPtrace, containerInfo, kernelAtLeast, seccompInfo, unprivilegedSysctl, userName } from './environment';

export interface Refusal { reason: string; fix: string }

/** What kernel-mode accesses do under UFFD_USER_MODE_ONLY. */
export const USER_MODE_ONLY_LIMIT = 'a missing page touched inside a system call (fs.readSync into the memory, ' +
  'fs.writeSync from it) fails with EFAULT instead of waiting for the handler; region.read/write, direct touches, ' +
  'serve() and Workers work';

const SYSCTL_FIX = 'sudo sysctl -w vm.unprivileged_userfaultfd=1';

function code(a: OpenAttempt | undefined): string {
  return a ? (a.ok ? 'ok' : a.code ?? 'error') : 'not tried';
}

/** The device part of a refusal, and its fix (null when the device is no way out). */
function device(dev: OpenAttempt | undefined, inContainer: boolean): Refusal | null {
  if (!dev || dev.ok) return null;
  if (dev.code === 'ENOENT') {
    return {
      reason: '/dev/userfaultfd does not exist',
      fix: !kernelAtLeast(6, 1) ? '' : inContainer ? 'pass the device in: docker run --device /dev/userfaultfd'
        : 'use a kernel with CONFIG_USERFAULTFD (it creates /dev/userfaultfd on Linux >= 6.1)',
    };
  }
  if (dev.code === 'EACCES' || dev.code === 'EPERM') {
    return { reason: `/dev/userfaultfd is not open to ${userName()} (${dev.code})`, fix: `sudo setfacl -m u:${userName()}:rw /dev/userfaultfd` };
  }
  return { reason: `/dev/userfaultfd: ${dev.code}`, fix: '' };
}

function join(fixes: string[]): string {
  return fixes.filter((f) => f !== '').join(', or ');
}

/** The kernel gave only a UFFD_USER_MODE_ONLY fd: why not a full one, and how to get it. */
export function explainUserModeOnly(attempts: readonly OpenAttempt[]): Refusal {
  const sys = findAttempt(attempts, 'syscall', false);
  const inContainer = containerInfo().detected;
  const dev = device(findAttempt(attempts, 'dev-userfaultfd', false), inContainer);
  const why = sys?.code === 'EPERM' && capSysPtrace() === false && unprivilegedSysctl() === 0
    ? `EPERM: ${userName()} has no CAP_SYS_PTRACE and vm.unprivileged_userfaultfd is 0` : code(sys);
  return {
    reason: `only user-mode-only userfaultfds (UFFD_USER_MODE_ONLY) can be opened here (userfaultfd(2): ${why}` +
      `${dev ? `; ${dev.reason}` : ''}): ${USER_MODE_ONLY_LIMIT}`,
    fix: join([
      SYSCTL_FIX + (inContainer ? ' on the host (the sysctl is not namespaced)' : ''),
      dev?.fix ?? '',
      'run with CAP_SYS_PTRACE',
    ]),
  };
}

/** The kernel refused every way of opening a userfaultfd. */
export function explainRefusal(attempts: readonly OpenAttempt[]): Refusal {
  const sys = findAttempt(attempts, 'syscall', false);
  const umo = findAttempt(attempts, 'syscall', true);
  const seccomp = seccompInfo();
  const container = containerInfo();
  const filtered = seccomp.mode === 2;
  const inContainer = container.detected;
  const dev = device(findAttempt(attempts, 'dev-userfaultfd', false), inContainer);
  const devPart = dev ? `; ${dev.reason}` : '';
  const where = inContainer ? ` in a container (${container.kind})` : '';
  // The kernel grants UFFD_USER_MODE_ONLY to everyone (Linux >= 5.11): EPERM on it, or on a full
  // uffd for a caller the kernel would allow, comes from a seccomp filter (or an LSM).
  const denied = (umo?.code === 'EPERM' && kernelAtLeast(5, 11)) ||
    (sys?.code === 'EPERM' && (capSysPtrace() === true || unprivilegedSysctl() === 1));
  if (denied || (sys?.code === 'ENOSYS' && filtered)) {
    const by = filtered ? `a seccomp filter (Seccomp: 2${inContainer ? '; Docker\'s default profile denies userfaultfd' : ''})` : 'a security policy (seccomp or an LSM)';
    return {
      reason: `the userfaultfd(2) syscall is denied by ${by}${where} (${code(sys)}, and ${code(umo)} even with UFFD_USER_MODE_ONLY)${devPart}`,
      fix: join([
        inContainer ? 'run the container with a seccomp profile that allows "userfaultfd" (docker run --security-opt seccomp=<profile.json>)'
          : 'allow the userfaultfd syscall in the seccomp profile of whatever starts this process (systemd SystemCallFilter=, a sandbox)',
        dev?.fix ?? '',
      ]),
    };
  }
  if (sys?.code === 'ENOSYS') {
    return {
      reason: `this kernel has no userfaultfd (ENOSYS: built without CONFIG_USERFAULTFD, or an emulated kernel such as gVisor)${devPart}`,
      fix: 'run on a Linux kernel with CONFIG_USERFAULTFD=y',
    };
  }
  if (sys?.code === 'EPERM') {
    return {
      reason: `userfaultfd(2): EPERM (${userName()} has no CAP_SYS_PTRACE, vm.unprivileged_userfaultfd is ` +
        `${unprivilegedSysctl() ?? 'unknown'}), and UFFD_USER_MODE_ONLY: ${code(umo)}` +
        `${kernelAtLeast(5, 11) ? '' : ' (it needs Linux >= 5.11)'}${devPart}`,
      fix: join([SYSCTL_FIX, dev?.fix ?? '', 'run with CAP_SYS_PTRACE']),
    };
  }
  return { reason: `userfaultfd(2): ${sys?.message ?? code(sys)}${devPart}`, fix: 'run npx userfaultfd doctor for details' };
}

/** "reason; fix: ..." as one line. */
export function refusalText(r: Refusal): string {
  return r.fix ? `${r.reason}; fix: ${r.fix}` : r.reason;
}
