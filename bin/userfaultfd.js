#!/usr/bin/env node
// `npx userfaultfd doctor [--json] [--user-mode-only]`: see lib/doctor.ts.
'use strict';
process.exitCode = require('../dist/doctor.js').main(process.argv.slice(2));
