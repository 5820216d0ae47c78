#!/usr/bin/env node
// `npx userfaultfd [doctor] [--json] [--full | --user-mode-only]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-cli.ts.
// `npx userfaultfd help [command]`, `--version`. Errors and exit statuses: lib/tools/cli.ts.
'use strict';
require('../dist/tools/cli.js').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
