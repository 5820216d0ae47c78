#!/usr/bin/env node
// `npx userfaultfd --version`: the package's version.
// `npx userfaultfd doctor [--json] [--full]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-handler.ts.
// `npx userfaultfd criu-lazy-pages -D <images> [...]`: see lib/tools/criu-lazy-pages.ts.
'use strict';

// The commands that run until their peers are done: name -> module in dist/tools.
const COMMANDS = {
  'firecracker-handler': 'firecracker-handler.js',
  'criu-lazy-pages': 'criu-lazy-pages.js',
};

const argv = process.argv.slice(2);
if (argv[0] === '--version' || argv[0] === '-v') {
  process.stdout.write(`${require('../package.json').version}\n`);
} else if (Object.prototype.hasOwnProperty.call(COMMANDS, argv[0])) {
  const name = argv[0];
  require(`../dist/tools/${COMMANDS[name]}`).main(argv.slice(1)).then((code) => {
    process.exitCode = code;
  }, (e) => {
    process.stderr.write(`${name}: fatal: ${e.stack || e}\n`);
    process.exitCode = 1;
  });
} else {
  process.exitCode = require('../dist/tools/doctor.js').main(argv);
}
