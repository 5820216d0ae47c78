#!/usr/bin/env node
// `npx userfaultfd --version`: the package's version.
// `npx userfaultfd doctor [--json] [--full]`: see lib/tools/doctor.ts.
// `npx userfaultfd firecracker-handler <socket> <memory-file> [...]`: see lib/tools/firecracker-cli.ts.
// `npx userfaultfd criu-lazy-pages -D <images> [...]`: see lib/tools/criu-lazy-pages.ts.
'use strict';

// The commands that run until their peers are done: name -> module in dist/tools, and whether
// it exits as soon as it is done (criu lazy-pages' exit is how scripts see every page is in).
const COMMANDS = {
  'firecracker-handler': { file: 'firecracker-cli.js', exitWhenDone: false },
  'criu-lazy-pages': { file: 'criu-lazy-pages.js', exitWhenDone: true },
};

const argv = process.argv.slice(2);
if (argv[0] === '--version' || argv[0] === '-v') {
  process.stdout.write(`${require('../package.json').version}\n`);
} else if (Object.prototype.hasOwnProperty.call(COMMANDS, argv[0])) {
  const name = argv[0];
  const command = COMMANDS[name];
  require(`../dist/tools/${command.file}`).main(argv.slice(1)).then((code) => {
    process.exitCode = code;
    if (command.exitWhenDone) process.exit(code); // stdout and stderr are written synchronously
  }, (e) => {
    process.stderr.write(`${name}: fatal: ${e.stack || e}\n`);
    process.exitCode = 1;
  });
} else {
  process.exitCode = require('../dist/tools/doctor.js').main(argv);
}
