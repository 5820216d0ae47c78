/**
 * The processes a lazy restore handed over, as this daemon may kill them: a pid is killed only
 * if it is still the process that was restored (its start time, from /proc/PID/stat, is the
 * one seen when its userfaultfd arrived), and only if at that time it was criu restore itself
 * or one of its descendants (criu restore forks the tasks it restores). A pid from another pid
 * namespace, or one that was reused since, is never killed.
 */
import * as fs from 'fs';

/** A process as /proc/PID/stat showed it. */
interface Stat {
  ppid: number;
  startTime: string;
  state: string;
}

function stat(pid: number): Stat | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], ppid: Number(f[1]), startTime: f[19] };
  } catch {
    return null;
  }
}

/** A restored process, pinned to its start time. */
export interface RestoredProcess {
  pid: number;
  startTime: string;
}

/**
 * The process `pid` as it is now, if it is `ancestor` or a descendant of it (the process that
 * sent its userfaultfd, criu restore); null otherwise (another pid namespace, gone).
 */
export function pinRestored(pid: number, ancestor: number): RestoredProcess | null {
  const s = stat(pid);
  if (s === null) return null;
  for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
    if (p === ancestor) return { pid, startTime: s.startTime };
    const up = stat(p);
    if (up === null) return null;
    p = up.ppid;
  }
  return null;
}

/** The descendants of `pid` now (its fork children, theirs, ...). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(Number(name));
    if (s === null) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(Number(name));
    children.set(s.ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/**
 * SIGKILL to the process, if it is still the one pinned, and to its descendants. Returns what
 * happened, for the log.
 */
export function killRestored(p: RestoredProcess): string {
  const now = stat(p.pid);
  if (now === null || now.state === 'Z' || now.state === 'X') return 'gone already';
  if (now.startTime !== p.startTime) return 'not killed: the pid is another process now';
  const tree = [p.pid, ...descendants(p.pid)];
  for (const pid of tree) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return tree.length === 1 ? 'killed (SIGKILL)' : `killed (SIGKILL) with ${tree.length - 1} descendant(s)`;
}
