/**
 * `npx userfaultfd firecracker-handler <socket> <memory-file> [options]`: the command around
 * FirecrackerHandler (firecracker-handler.ts): its options, and the lines or JSON it prints.
 * bin/userfaultfd.js runs main().
 */
import * as fs from 'fs';
import { parseArgs } from 'util';
import { probe } from '../core/backend';
import { Userfaultfd } from '../core/userfaultfd';
import { FirecrackerHandler, VmSummary } from './firecracker-handler';

export const USAGE = `usage: userfaultfd firecracker-handler <socket> <memory-file> [options]

  --peers N             exit once N VMs have come and gone (default 1)
  --on-error kill|keep  a VM that cannot be served is killed (default) or left running
  --record FILE         record each mapping's working set (mapping i > 0: FILE.i)
  --prefetch FILE       prefetch a recorded working set (mapping i > 0: FILE.i)
  --allow-uid UID       also accept VMs run as this uid (repeatable; the jailer's uid):
                        the socket is then created 0666, and other uids are refused
  --json                print one JSON line per VM and a JSON summary on stdout
`;

function summaryLine(vms: VmSummary[], rejected: number): string {
  const sum = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
  const mib = (sum((v) => v.bytes) / (1 << 20)).toFixed(1);
  const failed = vms.filter((v) => v.status !== 'served').length;
  return `firecracker-handler: ${vms.length} peer(s), ${sum((v) => v.faults)} faults, ${mib} MiB served, ` +
    `${sum((v) => v.removedPages)} pages removed (zero on refault), ${failed} failed, ${rejected} connection(s) rejected\n`;
}

function vmLine(v: VmSummary): string {
  const what = v.status === 'served' ? 'served' : `${v.status} (${v.error?.code})`;
  return `  vm pid ${v.pid}: ${what}, ${v.faults} faults, ${v.bytes} bytes, p50 ${(v.latencyNs.p50 / 1000).toFixed(0)} us, ` +
    `p99 ${(v.latencyNs.p99 / 1000).toFixed(0)} us, ${v.removedPages} pages removed\n`;
}

/** Whether this build's serve() takes record/prefetch (the working-set feature). */
function hasWorkingSets(): boolean {
  return typeof (Userfaultfd.prototype as unknown as { saveWorkingSet?: unknown }).saveWorkingSet === 'function';
}

/** The command. Returns the exit status: 0 when every VM was served, 1 when one was not, 2 on usage. */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout,
                           err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        peers: { type: 'string', default: '1' },
        'on-error': { type: 'string', default: 'kill' },
        record: { type: 'string' },
        prefetch: { type: 'string' },
        'allow-uid': { type: 'string', multiple: true, default: [] },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    err.write(`userfaultfd firecracker-handler: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const peers = Number(values.peers);
  const onError = values['on-error'];
  const usage = (why: string): number => {
    err.write(`userfaultfd firecracker-handler: ${why}\n\n${USAGE}`);
    return 2;
  };
  if (positionals.length !== 2) return usage('expected <socket> and <memory-file>');
  if (!Number.isInteger(peers) || peers < 1) return usage(`--peers must be a positive integer (got ${values.peers})`);
  if (onError !== 'kill' && onError !== 'keep') return usage(`--on-error must be kill or keep (got ${onError})`);
  const allowUids = (values['allow-uid'] as string[]).map(Number);
  if (!allowUids.every((u) => Number.isInteger(u) && u >= 0)) return usage(`--allow-uid must be a uid (got ${values['allow-uid']})`);
  if ((values.record !== undefined || values.prefetch !== undefined) && !hasWorkingSets()) {
    err.write('userfaultfd firecracker-handler: ERR_UFFD_UNSUPPORTED: --record and --prefetch need working sets ' +
      '(serve({ record, prefetch })), which this build of userfaultfd does not have\n');
    return 2;
  }
  const p = probe({ backend: 'native' });
  if (!p.available) {
    err.write(`userfaultfd firecracker-handler: ERR_UFFD_UNAVAILABLE: the kernel backend is unavailable (${p.reason}); ` +
      'run `npx userfaultfd doctor`\n');
    return 1;
  }
  const [socket, memoryFile] = positionals;
  const handler = new FirecrackerHandler({ socket, memoryFile, peers, onError, record: values.record, prefetch: values.prefetch, allowUids,
    log: (line) => err.write(`firecracker-handler: ${line}\n`) });
  if (!fs.existsSync(memoryFile)) handler.log(`warning: the memory file ${memoryFile} does not exist (yet)`);
  const stop = (): void => handler.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let vms: VmSummary[];
  try {
    vms = await handler.run((v) => {
      if (values.json) out.write(JSON.stringify({ type: 'vm', ...v }) + '\n');
    });
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  const failed = vms.filter((v) => v.status !== 'served').length;
  if (values.json) {
    const total = (f: (v: VmSummary) => number): number => vms.reduce((n, v) => n + f(v), 0);
    out.write(JSON.stringify({
      type: 'summary', vms: vms.length, failed, rejected: handler.rejected, faults: total((v) => v.faults),
      bytes: total((v) => v.bytes), removedPages: total((v) => v.removedPages),
    }) + '\n');
  } else {
    out.write(summaryLine(vms, handler.rejected));
    for (const v of vms) out.write(vmLine(v));
  }
  return failed === 0 ? 0 : 1;
}
