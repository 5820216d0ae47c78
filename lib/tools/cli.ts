/**
 * The `userfaultfd` command line: `doctor` (the default), `firecracker-handler`, `help`,
 * `--version`. Argument parsing and error reporting: cli-errors.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { closestKey } from '../base/option-keys';
import { debugWanted, reportFailure, reportUsageError, UsageError } from './cli-errors';
import * as doctor from './doctor';
import * as firecracker from './firecracker-cli';

export const COMMANDS = ['doctor', 'firecracker-handler', 'help'] as const;

export const USAGE = `Usage: userfaultfd [doctor] [--json] [--full | --user-mode-only]
       userfaultfd firecracker-handler <socket> <memory-file> [options]
       userfaultfd help [doctor | firecracker-handler]
       userfaultfd --version
Add --debug (or set NODE_DEBUG=userfaultfd) to any command to see the stack of a failure.
`;

/**
 * The command line: returns the exit status. `doctor` is the default command; `help` and
 * `--help` print the usage of the command named, or of them all.
 */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout,
                           err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const debug = debugWanted(argv);
  const args = argv.filter((a) => a !== '--debug');
  const first = args[0];
  if (first === '--version' || first === '-v') {
    out.write(`${packageVersion()}\n`);
    return 0;
  }
  if (first === 'help') return help(args.slice(1), out, err);
  if (first === '--help' || first === '-h') return help([], out, err);
  try {
    if (first === 'firecracker-handler') {
      return await firecracker.main(args.slice(1), out, err);
    }
    if (first === undefined || first === 'doctor' || first.startsWith('-')) {
      return doctor.main(first === 'doctor' ? args.slice(1) : args, out, err);
    }
    const near = closestKey(first, COMMANDS);
    return reportUsageError(new UsageError(`unknown command '${first}'`,
      near === null ? `the commands are ${COMMANDS.join(', ')}` : `did you mean '${near}'?`), 'userfaultfd', err);
  } catch (e) {
    return reportFailure(e, first === 'firecracker-handler' ? 'userfaultfd firecracker-handler' : 'userfaultfd', err, debug);
  }
}

function help(topic: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  if (topic.length === 0) {
    out.write(USAGE + '\n' + doctor.DOCTOR_HELP);
    return 0;
  }
  if (topic.length === 1 && topic[0] === 'doctor') {
    out.write(doctor.DOCTOR_HELP);
    return 0;
  }
  if (topic.length === 1 && topic[0] === 'firecracker-handler') {
    out.write(firecracker.USAGE);
    return 0;
  }
  return reportUsageError(new UsageError(`no help for '${topic.join(' ')}'`, `the commands are ${COMMANDS.join(', ')}`), 'userfaultfd', err);
}

function packageVersion(): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}
