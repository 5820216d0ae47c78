#!/usr/bin/env node
// `npx userfaultfd [doctor] [--json] [--full | --user-mode-only]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-cli.ts.
// `npx userfaultfd criu-lazy-pages -D <images> [...]`: see lib/tools/criu-lazy-pages.ts.
// `npx userfaultfd help [command]`, `--version`. Errors and exit statuses: lib/tools/cli.ts.
'use strict';
require('../dist/tools/cli.js').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // criu-lazy-pages' exit is how scripts see that every page is in: at once (it writes its
  // output synchronously, and has closed what it opened).
  if (process.argv[2] === 'criu-lazy-pages') process.exit(code);
});
