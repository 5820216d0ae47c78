/**
 * How the `userfaultfd` commands parse their arguments and report errors (lib/tools/cli.ts
 * dispatches to them). Every usage error is one line naming the problem and the fix, then a
 * pointer to --help, and exit status 2. An unexpected failure is one line too (exit 1); its
 * stack is printed only with --debug or NODE_DEBUG=userfaultfd.
 */
import { parseArgs } from 'util';
import { closestKey } from '../base/option-keys';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] }>;

/** A command line that cannot be run as given: `problem`, and how to fix it. */
export class UsageError extends Error {
  constructor(readonly problem: string, readonly fix: string) {
    super(`${problem}: ${fix}`);
  }
}

/**
 * parseArgs, with errors that name the option and the fix (parseArgs' own messages quote
 * unevenly and suggest nothing): an unknown option suggests the nearest known one.
 */
export function parseCommandLine(argv: string[], options: OptionSpec): { values: Record<string, unknown>; positionals: string[] } {
  const { values, positionals, tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (spec === undefined) {
      const near = closestKey(t.name, Object.keys(options));
      const all = Object.keys(options).map((k) => `--${k}`).join(', ');
      throw new UsageError(`unknown option '${t.rawName}'`, near === null ? `the options are ${all}` : `did you mean '--${near}'?`);
    }
    if (spec.type === 'string' && t.value === undefined) {
      throw new UsageError(`option '${t.rawName}' needs a value`, `give it as '${t.rawName} VALUE'`);
    }
    if (spec.type === 'boolean' && t.inlineValue) {
      throw new UsageError(`option '${t.rawName}' takes no value`, `write '${t.rawName}' alone`);
    }
  }
  return { values, positionals };
}

/** Writes a usage error as the module comment says; returns 2. */
export function reportUsageError(e: UsageError, program: string, err: NodeJS.WritableStream): number {
  err.write(`${program}: ${e.problem}; ${e.fix}\nRun '${program} --help' for usage.\n`);
  return 2;
}

/** Whether stacks are wanted: --debug on the command line, or NODE_DEBUG naming userfaultfd. */
export function debugWanted(argv: string[]): boolean {
  return argv.includes('--debug') || /(^|[\s,])userfaultfd([\s,]|$)/i.test(process.env.NODE_DEBUG ?? '');
}

/** Writes an unexpected failure: one line (with its code), the stack only when debugging; returns 1. */
export function reportFailure(e: unknown, program: string, err: NodeJS.WritableStream, debug: boolean): number {
  if (debug) {
    err.write(`${program}: ${(e as Error)?.stack ?? String(e)}\n`);
  } else {
    const code = (e as { code?: unknown })?.code;
    const message = (e as Error)?.message ?? String(e);
    const prefix = typeof code === 'string' && !message.startsWith(code) ? `${code}: ` : '';
    err.write(`${program}: ${prefix}${message} (run with --debug for the stack)\n`);
  }
  return 1;
}
