/**
 * `npx userfaultfd doctor`: what this machine allows, why, and the exact fix for each refusal.
 * Every check is read-only except opening (and at once closing) throwaway userfaultfds.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { probe } from '../core/backend';
import { binding, loadError } from '../base/native';
import '../kernel';
import '../simulator';
import { parseCommandLine, reportUsageError, UsageError } from './cli-errors';
import type { ProbeResult } from '../base/types';
import { OpenAttempt, OpenMethod, tryOpen } from '../kernel/attempts';
import {
  capSysPtrace, containerInfo, kernelVersion, readText, seccompInfo, statusField,
} from '../kernel/environment';
import { USER_MODE_ONLY_LIMIT } from '../kernel/refusal';

export type { OpenAttempt, OpenMethod };

export interface Problem {
  /** What is refused or limited, in one sentence. */
  problem: string;
  /** Commands or options that lift it, best first. */
  fixes: string[];
}

export interface DoctorReport {
  package: { name: string; version: string };
  node: string;
  platform: string;
  kernel: { release: string; version: string } | null;
  arch: string;
  pageSize: number;
  addon: { loaded: boolean; path: string | null; error: string | null };
  user: { uid: number | null; name: string | null; capSysPtrace: boolean | null; capEff: string | null };
  sysctl: { unprivilegedUserfaultfd: number | null };
  seccomp: { mode: number | null; description: string; filters: number | null };
  container: { detected: boolean; kind: string | null; evidence: string[] };
  device: { exists: boolean; mode: string | null; uid: number | null; gid: number | null; accessible: boolean };
  attempts: OpenAttempt[];
  /** The kernel's offer (features and ioctls), or why it could not be read. */
  native: ProbeResult;
  auto: { backend: string; reason: string };
  /** 'full': a full userfaultfd opens; 'user-mode-only': open() falls back to UFFD_USER_MODE_ONLY. */
  access: 'full' | 'user-mode-only' | 'none';
  usable: boolean;
  problems: Problem[];
}



function packageInfo(): { name: string; version: string } {
  try {
    const p = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
    return { name: String(p.name), version: String(p.version) };
  } catch {
    return { name: 'userfaultfd', version: 'unknown' };
  }
}

function addonPath(): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the loader resolves the addon at run time
    return require('node-gyp-build').path(path.join(__dirname, '..', '..')) as string;
  } catch {
    return null;
  }
}

function userInfo(status: string | null): DoctorReport['user'] {
  let uid: number | null = null;
  let name: string | null = null;
  try {
    const u = os.userInfo();
    uid = u.uid;
    name = u.username;
  } catch {
    uid = typeof process.getuid === 'function' ? process.getuid() : null;
  }
  const capEff = statusField('CapEff', status);
  return { uid, name, capSysPtrace: capSysPtrace(capEff), capEff };
}



function deviceInfo(): DoctorReport['device'] {
  const dev = '/dev/userfaultfd';
  try {
    const st = fs.statSync(dev);
    let accessible = true;
    try {
      fs.accessSync(dev, fs.constants.R_OK | fs.constants.W_OK);
    } catch {
      accessible = false;
    }
    return { exists: true, mode: (st.mode & 0o7777).toString(8).padStart(4, '0'), uid: st.uid, gid: st.gid, accessible };
  } catch {
    return { exists: false, mode: null, uid: null, gid: null, accessible: false };
  }
}

/** Reads the machine. No side effects beyond throwaway fds. */
export function diagnose(): DoctorReport {
  const status = readText('/proc/self/status');
  const user = userInfo(status);
  const seccomp = seccompInfo(status);
  const container = containerInfo();
  const device = deviceInfo();
  const sysctlRaw = readText('/proc/sys/vm/unprivileged_userfaultfd');
  const unprivilegedSysctl = sysctlRaw === null ? null : parseInt(sysctlRaw.trim(), 10);
  const linux = process.platform === 'linux';
  const pageSize = binding ? binding.constants.pageSize : 4096;
  const attempts: OpenAttempt[] = [];
  if (binding) {
    for (const method of ['syscall', 'dev-userfaultfd'] as const) {
      for (const umo of [false, true]) attempts.push(tryOpen(method, umo).attempt);
    }
  }
  const native = probe({ backend: 'native' });
  let auto: DoctorReport['auto'];
  try {
    const a = probe();
    const forced = process.env.USERFAULTFD_BACKEND;
    let reason: string;
    if (forced === 'native' || forced === 'simulator') reason = `USERFAULTFD_BACKEND=${forced} is set`;
    else if (a.backend === 'native') {
      reason = `the kernel accepted a userfaultfd (via ${a.via ?? 'syscall'})`;
      if (a.userModeOnly) {
        reason += ' but only with UFFD_USER_MODE_ONLY: open() falls back to it, with the warning USERFAULTFD_USER_MODE_ONLY';
      }
    }
    else reason = `the kernel path is unavailable: ${native.reason ?? 'unknown'}`;
    if (a.backend === 'simulator' && !a.available) {
      let simReason = 'unknown';
      try { simReason = probe({ backend: 'simulator' }).reason ?? simReason; } catch (e) { simReason = (e as Error).message; }
      reason += `; the simulator is unavailable too: ${simReason}`;
    }
    auto = { backend: a.backend, reason };
  } catch (e) {
    auto = { backend: 'none', reason: (e as Error).message };
  }

  const full = attempts.some((a) => a.ok && !a.userModeOnly);
  const umo = attempts.some((a) => a.ok && a.userModeOnly);
  const access: DoctorReport['access'] = full ? 'full' : umo ? 'user-mode-only' : 'none';

  const report: DoctorReport = {
    package: packageInfo(),
    node: process.version,
    platform: process.platform,
    kernel: linux ? { release: os.release(), version: os.version() } : null,
    arch: process.arch,
    pageSize,
    addon: { loaded: binding !== null, path: binding ? addonPath() : null, error: binding ? null : loadError },
    user,
    sysctl: { unprivilegedUserfaultfd: Number.isNaN(unprivilegedSysctl) ? null : unprivilegedSysctl },
    seccomp,
    container,
    device,
    attempts,
    native,
    auto,
    access,
    usable: full || umo,
    problems: [],
  };
  report.problems = problems(report);
  return report;
}

function problems(r: DoctorReport): Problem[] {
  const out: Problem[] = [];
  if (r.platform !== 'linux') {
    out.push({
      problem: `userfaultfd is a Linux system call; this is ${r.platform}`,
      fixes: ["use the simulator backend (Userfaultfd.open({ backend: 'simulator' }); 'auto' picks it here)", 'run on Linux >= 4.11 for the real kernel path'],
    });
    return out;
  }
  if (!r.addon.loaded) {
    out.push({
      problem: `the native addon did not load: ${r.addon.error}`,
      fixes: [
        `reinstall so that a prebuild (linux-x64, linux-arm64) or a build from source is used: npm rebuild ${r.package.name}`,
        'to build from source, install a compiler, make and python3 (Debian/Ubuntu: apt-get install -y g++ make python3)',
      ],
    });
    return out;
  }
  const who = r.user.name ?? (r.user.uid !== null ? String(r.user.uid) : '$USER');
  const find = (m: OpenMethod, u: boolean): OpenAttempt | undefined => r.attempts.find((a) => a.method === m && a.userModeOnly === u);
  const sys = find('syscall', false);
  const sysUmo = find('syscall', true);
  const devA = find('dev-userfaultfd', false);
  const filtered = r.seccomp.mode === 2;
  const inContainer = r.container.detected;
  const [major, minor] = kernelVersion();

  if (sys && !sys.ok) {
    const fixes: string[] = [];
    // The kernel itself allows UFFD_USER_MODE_ONLY to everyone: if that is refused too, or the
    // caller has the privilege, the refusal comes from a seccomp filter (or an LSM).
    const bySeccomp = sys.code === 'EPERM' && ((sysUmo && !sysUmo.ok && sysUmo.code === 'EPERM') ||
      r.user.capSysPtrace === true || r.sysctl.unprivilegedUserfaultfd === 1);
    if (sys.code === 'EPERM' && !bySeccomp) {
      out.push({
        problem: `the userfaultfd(2) syscall is refused (EPERM): this user (${who}) lacks CAP_SYS_PTRACE and vm.unprivileged_userfaultfd is ${r.sysctl.unprivilegedUserfaultfd ?? 'unknown'}`,
        fixes: [
          ...(inContainer ? ['vm.unprivileged_userfaultfd is not namespaced: set it on the host, not in the container'] : []),
          'sudo sysctl -w vm.unprivileged_userfaultfd=1   (persist: echo vm.unprivileged_userfaultfd=1 | sudo tee /etc/sysctl.d/99-userfaultfd.conf)',
          ...(r.device.exists ? [`or grant the device instead of the sysctl: sudo setfacl -m u:${who}:rw /dev/userfaultfd   (the library falls back to /dev/userfaultfd when the syscall says EPERM)`] : []),
          'or run with CAP_SYS_PTRACE (as root, or in a container with --cap-add SYS_PTRACE)',
        ],
      });
    } else if (sys.code === 'EPERM' || sys.code === 'ENOSYS' || sys.code === 'EACCES') {
      if (filtered || sys.code !== 'ENOSYS') {
        fixes.push(
          inContainer
            ? 'docker run --security-opt seccomp=<profile.json> with a profile that allows the "userfaultfd" syscall (Docker\'s default profile denies it; copy moby\'s profiles/seccomp/default.json and add "userfaultfd" to an SCMP_ACT_ALLOW names list), plus --cap-add SYS_PTRACE or the host sysctl vm.unprivileged_userfaultfd=1; for a quick test only: --security-opt seccomp=unconfined'
            : 'the process runs under a seccomp filter that denies userfaultfd: allow the syscall in the profile of the sandbox that starts it (systemd SystemCallFilter=, a container runtime\'s seccomp profile, ...)',
        );
        if (inContainer && r.device.exists === false) fixes.push('or pass the device through and grant it: docker run --device /dev/userfaultfd (Linux >= 6.1), which needs no syscall allowance');
        if (inContainer && r.container.kind === 'kubernetes') fixes.push('Kubernetes: securityContext.seccompProfile { type: Localhost, localhostProfile: <profile allowing userfaultfd> }');
      } else {
        fixes.push('ENOSYS: the kernel was built without CONFIG_USERFAULTFD, or this runs on a kernel emulation that lacks the ' +
          'syscall (gVisor / runsc sandboxes, qemu-user): run on a Linux kernel with CONFIG_USERFAULTFD=y (every major ' +
          "distribution enables it) outside such a sandbox, or use the simulator backend (Userfaultfd.open({ backend: 'simulator' }))");
      }
      out.push({
        problem: `the userfaultfd(2) syscall is refused (${sys.code})${filtered ? ` under a seccomp filter (Seccomp: 2, ${r.seccomp.filters ?? '?'} filter(s))` : ''}${inContainer ? ` in a container (${r.container.kind})` : ''}` +
          (devA?.ok ? '; /dev/userfaultfd works, and the library opens through it instead' : ''),
        fixes,
      });
    } else {
      out.push({ problem: `the userfaultfd(2) syscall failed: ${sys.message}`, fixes: ['report this output as an issue'] });
    }
  }
  if (sysUmo && !sysUmo.ok && sysUmo.code === 'EINVAL' && (major < 5 || (major === 5 && minor < 11))) {
    out.push({ problem: `UFFD_USER_MODE_ONLY is unknown to Linux ${os.release()} (added in 5.11)`, fixes: ['upgrade the kernel to use { userModeOnly: true }'] });
  }
  if (devA && !devA.ok && !(sys && sys.ok)) {
    if (devA.code === 'ENOENT') {
      out.push({
        problem: '/dev/userfaultfd does not exist',
        fixes: [major > 6 || (major === 6 && minor >= 1)
          ? (inContainer ? 'pass it into the container: docker run --device /dev/userfaultfd' : 'load it: the device exists when the kernel has CONFIG_USERFAULTFD (Linux >= 6.1); check ls -l /dev/userfaultfd on the host')
          : `Linux ${os.release()} predates /dev/userfaultfd (added in 6.1): use the syscall fixes above`],
      });
    } else if (devA.code === 'EACCES' || devA.code === 'EPERM') {
      out.push({
        problem: `/dev/userfaultfd is not readable and writable by ${who} (mode ${r.device.mode}, owner uid ${r.device.uid})`,
        fixes: [
          `sudo setfacl -m u:${who}:rw /dev/userfaultfd   (until reboot; persist with a udev rule: KERNEL=="userfaultfd", GROUP="<group>", MODE="0660" in /etc/udev/rules.d/99-userfaultfd.rules)`,
        ],
      });
    } else {
      out.push({ problem: `/dev/userfaultfd refused: ${devA.message}`, fixes: ['see the syscall fixes above'] });
    }
  }
  if (r.access === 'user-mode-only') {
    out.push({
      problem: 'only user-mode-only userfaultfds can be opened: Userfaultfd.open() falls back to UFFD_USER_MODE_ONLY ' +
        '(warning USERFAULTFD_USER_MODE_ONLY; { userModeOnly: false } throws EPERM instead)',
      fixes: [
        `what that costs (Linux >= 5.11): ${USER_MODE_ONLY_LIMIT}`,
        'to handle kernel-mode faults too, lift the refusal with one of the fixes above',
      ],
    });
  }
  // EVENT_FORK needs CAP_SYS_PTRACE at UFFDIO_API time: a limit, not a refusal.
  if (r.access !== 'none' && r.user.capSysPtrace === false) {
    out.push({
      problem: "features: 'EVENT_FORK' needs CAP_SYS_PTRACE (UFFDIO_API says EPERM without it)",
      fixes: ['run with CAP_SYS_PTRACE if you need fork events; everything else works without it'],
    });
  }
  return out;
}

function yesNo(v: boolean | null): string {
  return v === null ? 'unknown' : v ? 'yes' : 'no';
}

/** The human-readable report. */
export function formatReport(r: DoctorReport, full = false): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => { lines.push(`  ${k.padEnd(34)}${v}`); };
  lines.push(`userfaultfd doctor — ${r.package.name}@${r.package.version} on Node ${r.node}`);
  lines.push('');
  lines.push('System');
  row('kernel', r.kernel ? `${r.kernel.release} (${r.kernel.version})` : `none (${r.platform})`);
  row('architecture', r.arch);
  row('page size', String(r.pageSize));
  row('native addon', r.addon.loaded ? `loaded${r.addon.path ? ` from ${r.addon.path}` : ''}` : `not loaded: ${r.addon.error}`);
  row('user', `${r.user.name ?? '?'} (uid ${r.user.uid ?? '?'})`);
  row('CAP_SYS_PTRACE', `${yesNo(r.user.capSysPtrace)}${r.user.capEff ? ` (CapEff ${r.user.capEff})` : ''}`);
  row('vm.unprivileged_userfaultfd', r.sysctl.unprivilegedUserfaultfd === null ? 'unknown (no /proc/sys/vm/unprivileged_userfaultfd)' : String(r.sysctl.unprivilegedUserfaultfd));
  row('seccomp', r.seccomp.mode === null ? 'unknown' : `${r.seccomp.mode}: ${r.seccomp.description}${r.seccomp.filters ? `, ${r.seccomp.filters} filter(s)` : ''}`);
  row('container', r.container.detected ? `yes, ${r.container.kind} (${r.container.evidence.join('; ')})` : 'not detected');
  row('/dev/userfaultfd', r.device.exists ? `mode ${r.device.mode}, uid ${r.device.uid}, gid ${r.device.gid}, ${r.device.accessible ? 'accessible' : 'not accessible'} to this user` : 'absent');
  lines.push('');
  lines.push('Opening a userfaultfd');
  if (r.attempts.length === 0) lines.push('  not tried (no native addon)');
  for (const a of r.attempts) {
    const what = `${a.method === 'syscall' ? 'userfaultfd(2)' : '/dev/userfaultfd'}${a.userModeOnly ? ', user-mode only' : ''}`;
    row(what, a.ok ? 'ok' : `${a.code ?? 'error'}${a.errno ? ` (errno ${a.errno})` : ''} from ${a.syscall ?? '?'}`);
  }
  lines.push('');
  if (r.native.available) {
    lines.push(`Kernel offer (API 0x${r.native.api.toString(16)}, via ${r.native.via}${r.access === 'user-mode-only' ? ', user-mode only' : ''})`);
    row('features', r.native.features.join(' ') || 'none');
    row('ioctls on the fd', `${r.native.ioctls.join(' ') || 'none'} (the range ioctls are listed by register())`);
  } else {
    lines.push('Kernel offer');
    row('unavailable', r.native.reason ?? 'unknown');
  }
  lines.push('');
  lines.push('Backend');
  row("'auto' picks", `${r.auto.backend}: ${r.auto.reason}`);
  lines.push('');
  if (r.problems.length === 0) {
    lines.push('No problems found.');
  } else {
    lines.push('Problems and fixes');
    for (const p of r.problems) {
      lines.push(`  ✗ ${p.problem}`);
      for (const f of p.fixes) lines.push(`      → ${f}`);
    }
  }
  lines.push('');
  const ok = usable(r, full);
  lines.push(ok
    ? `Verdict: the kernel path is usable${r.access === 'user-mode-only' ? ', user-mode only (a missing page touched inside a system call fails with EFAULT)' : ''} (exit 0).`
    : `Verdict: the kernel path is NOT usable${r.access === 'user-mode-only' ? ' with a full userfaultfd (--full); user-mode only, it is' : `; 'auto' uses ${r.auto.backend}`} (exit 1).`);
  return lines.join('\n') + '\n';
}

/**
 * Exit status 0: Userfaultfd.open() reaches the kernel (falling back to UFFD_USER_MODE_ONLY where
 * that is all the kernel grants); with --full, only when a full userfaultfd can be opened.
 */
export function usable(r: DoctorReport, full = false): boolean {
  return r.access === 'full' || (!full && r.access === 'user-mode-only');
}

export const DOCTOR_HELP = `userfaultfd doctor [--json] [--full | --user-mode-only]   (the default command)

Reports what this machine allows (kernel, privileges, sysctl, seccomp, container, /dev/userfaultfd),
the features and ioctls the kernel offers, the backend 'auto' picks, and the fix for every refusal.
  --json             print the report as JSON
  --full             exit 0 only if a full userfaultfd can be opened (kernel-mode faults too),
                     not only a user-mode-only one
  --user-mode-only   exit 0 if a { userModeOnly: true } userfaultfd can be opened (the default)
Exit status: 0 when Userfaultfd.open() reaches the kernel, 1 when not, 2 on a usage error.
`;

const PROGRAM = 'userfaultfd doctor';

/** `userfaultfd doctor [options]` (argv without the command name). Returns the exit status. */
export function main(argv: string[] = process.argv.slice(2), out: NodeJS.WritableStream = process.stdout,
                     err: NodeJS.WritableStream = process.stderr): number {
  let values: Record<string, unknown>;
  try {
    const parsed = parseCommandLine(argv, {
      json: { type: 'boolean', default: false },
      'user-mode-only': { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
    values = parsed.values;
    if (values.help !== true && parsed.positionals.length > 0) {
      throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`, 'doctor takes options only');
    }
    if (values.full === true && values['user-mode-only'] === true) {
      throw new UsageError('--full and --user-mode-only contradict each other', 'give one of them');
    }
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(e, PROGRAM, err);
    throw e;
  }
  if (values.help) {
    out.write(DOCTOR_HELP);
    return 0;
  }
  const report = diagnose();
  const full = values.full === true;
  if (values.json) out.write(JSON.stringify({ ...report, usable: usable(report, full) }, null, 2) + '\n');
  else out.write(formatReport(report, full));
  return usable(report, full) ? 0 : 1;
}
