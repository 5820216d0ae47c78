/**
 * What the process's surroundings allow: privileges, the sysctl, seccomp, containers. Read-only;
 * shared by probe() (to name the reason for a refusal) and the doctor (to show it all).
 */
import * as fs from 'fs';
import * as os from 'os';

const CAP_SYS_PTRACE = 19;

export function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** One `Name:\tvalue` field of /proc/self/status (or of `status`, when given). */
export function statusField(name: string, status: string | null = readText('/proc/self/status')): string | null {
  if (!status) return null;
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status);
  return m ? m[1].trim() : null;
}

/** CAP_SYS_PTRACE in the effective set: what lets the kernel hand out a full uffd regardless of the sysctl. */
export function capSysPtrace(capEff: string | null = statusField('CapEff')): boolean | null {
  if (!capEff || !/^[0-9a-f]+$/i.test(capEff)) return null;
  return ((BigInt('0x' + capEff) >> BigInt(CAP_SYS_PTRACE)) & 1n) === 1n;
}

/** vm.unprivileged_userfaultfd, or null when it cannot be read. */
export function unprivilegedSysctl(): number | null {
  const raw = readText('/proc/sys/vm/unprivileged_userfaultfd');
  const v = raw === null ? NaN : parseInt(raw.trim(), 10);
  return Number.isNaN(v) ? null : v;
}

export interface SeccompInfo { mode: number | null; description: string; filters: number | null }

export function seccompInfo(status: string | null = readText('/proc/self/status')): SeccompInfo {
  const raw = statusField('Seccomp', status);
  const filters = statusField('Seccomp_filters', status);
  const mode = raw === null ? null : parseInt(raw, 10);
  const description = mode === 0 ? 'disabled' : mode === 1 ? 'strict' : mode === 2 ? 'filter (a seccomp profile is applied)' : 'unknown';
  return { mode, description, filters: filters === null ? null : parseInt(filters, 10) };
}

export interface ContainerInfo { detected: boolean; kind: string | null; evidence: string[] }

export function containerInfo(): ContainerInfo {
  const evidence: string[] = [];
  let kind: string | null = null;
  const note = (what: string, k: string): void => {
    evidence.push(what);
    kind = kind ?? k;
  };
  if (fs.existsSync('/.dockerenv')) note('/.dockerenv exists', 'docker');
  if (fs.existsSync('/run/.containerenv')) note('/run/.containerenv exists', 'podman');
  if (process.env.KUBERNETES_SERVICE_HOST) note('KUBERNETES_SERVICE_HOST is set', 'kubernetes');
  const envContainer = readText('/proc/1/environ')?.split('\0').find((e) => e.startsWith('container='));
  if (process.env.container) note(`container=${process.env.container} in the environment`, process.env.container);
  else if (envContainer) note(`${envContainer} in PID 1's environment`, envContainer.slice('container='.length));
  const cgroup = readText('/proc/1/cgroup') ?? '';
  const m = /(docker|containerd|kubepods|libpod|lxc|crio)/.exec(cgroup);
  if (m) note(`/proc/1/cgroup mentions ${m[1]}`, m[1] === 'libpod' ? 'podman' : m[1] === 'kubepods' ? 'kubernetes' : m[1]);
  const sched = readText('/proc/1/sched');
  if (sched) {
    const first = /^(\S+)\s+\((\d+),/.exec(sched);
    if (first && first[2] !== '1') note(`PID 1 is pid ${first[2]} on the host (a PID namespace)`, 'unknown');
  }
  return { detected: evidence.length > 0, kind, evidence };
}

export function kernelVersion(): [number, number] {
  const [major, minor] = os.release().split('.').map((x) => parseInt(x, 10));
  return [major || 0, minor || 0];
}

export function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = kernelVersion();
  return a > major || (a === major && b >= minor);
}

/** The user's name for advice such as `setfacl -m u:NAME:rw`. */
export function userName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return typeof process.getuid === 'function' ? String(process.getuid()) : '$USER';
  }
}
