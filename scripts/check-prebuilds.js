#!/usr/bin/env node
// Run by `npm pack` and `npm publish` (prepack): says plainly when the tarball will lack a
// prebuild for an arch the README promises, so that installing it there compiles from source.
// `npm run pack:release` builds both and packs.
'use strict';
const fs = require('fs');
const path = require('path');

const prebuilds = path.join(__dirname, '..', 'prebuilds');
const missing = ['linux-x64', 'linux-arm64'].filter((d) => !fs.existsSync(path.join(prebuilds, d, 'userfaultfd.node')));
if (missing.length > 0) {
  process.stderr.write(`userfaultfd: this tarball has no prebuilds for ${missing.join(' and ')}: installing it there ` +
    'compiles the addon from source (a C++ compiler, make and python3 needed). `npm run pack:release` builds the ' +
    'linux-x64 and linux-arm64 prebuilds and packs them.\n');
}
