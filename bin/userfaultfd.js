#!/usr/bin/env node
// `npx userfaultfd [doctor] [--json] [--full | --user-mode-only]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-cli.ts.
// `npx userfaultfd criu-lazy-pages -D <images> [...]`: see lib/tools/criu-lazy-pages.ts.
// `npx userfaultfd help [command]`, `--version`. Errors and exit statuses: lib/tools/cli.ts.
'use strict';
require('../dist/tools/cli.js').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // criu-lazy-pages' exit is how scripts see that every page is in: at once, without Node's
  // teardown (its output is written synchronously; the kernel closes its uffds and socket).
  if (process.argv[2] === 'criu-lazy-pages') require('../dist/tools/criu-daemon-mode.js').exitNow(code);
});
