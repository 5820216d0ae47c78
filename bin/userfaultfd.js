#!/usr/bin/env node
// `npx userfaultfd --version`: the package's version.
// `npx userfaultfd doctor [--json] [--full]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-cli.ts.
'use strict';
const argv = process.argv.slice(2);
if (argv[0] === '--version' || argv[0] === '-v') {
  process.stdout.write(`${require('../package.json').version}\n`);
} else if (argv[0] === 'firecracker-handler') {
  require('../dist/tools/firecracker-cli.js').main(argv.slice(1)).then((code) => {
    process.exitCode = code;
  }, (e) => {
    process.stderr.write(`firecracker-handler: fatal: ${e.stack || e}\n`);
    process.exitCode = 1;
  });
} else {
  process.exitCode = require('../dist/tools/doctor.js').main(argv);
}
