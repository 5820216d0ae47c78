/** Opening a throwaway userfaultfd one way, as the library would, and what the kernel said. */
import { binding } from '../base/native';

export type OpenMethod = 'syscall' | 'dev-userfaultfd';

/** One attempt to open a userfaultfd. */
export interface OpenAttempt {
  method: OpenMethod;
  userModeOnly: boolean;
  ok: boolean;
  /** 'EPERM', 'EACCES', ... when refused. */
  code?: string;
  errno?: number;
  /** The failing call: 'userfaultfd', 'open', 'USERFAULTFD_IOC_NEW', 'UFFDIO_API'. */
  syscall?: string;
  message?: string;
}

export interface HandshakeReply { api: number; features: number; ioctls: bigint }

/**
 * The order 'auto' tries: a full uffd (syscall, then the device), then UFFD_USER_MODE_ONLY
 * (which the kernel grants to every user, whatever the sysctl says).
 */
export const OPEN_ORDER: ReadonlyArray<readonly [OpenMethod, boolean]> = [
  ['syscall', false], ['dev-userfaultfd', false], ['syscall', true], ['dev-userfaultfd', true],
];

/** Opens, asks UFFDIO_API with features 0 (the kernel then lists all it supports), closes. */
export function tryOpen(method: OpenMethod, userModeOnly: boolean): { attempt: OpenAttempt; reply?: HandshakeReply } {
  const b = binding!;
  let fd = -1;
  try {
    fd = method === 'syscall' ? b.openSyscall(userModeOnly) : b.openDevice(userModeOnly);
    const reply = b.apiHandshake(fd, 0);
    return { attempt: { method, userModeOnly, ok: true }, reply };
  } catch (e) {
    const err = e as { code?: string; errno?: number; syscall?: string; message?: string };
    return { attempt: { method, userModeOnly, ok: false, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message } };
  } finally {
    if (fd >= 0) b.closeFd(fd);
  }
}

export function findAttempt(attempts: readonly OpenAttempt[], method: OpenMethod, userModeOnly: boolean): OpenAttempt | undefined {
  return attempts.find((a) => a.method === method && a.userModeOnly === userModeOnly);
}
