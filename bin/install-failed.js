#!/usr/bin/env node
// Runs when `node-gyp-build` could neither load a prebuild nor build the addon. On Linux that
// fails the install, with one line naming what to install; elsewhere the simulator serves.
'use strict';
if (process.platform === 'linux') {
  console.error('userfaultfd: building the native addon failed; install a C++17 compiler, make and python3 ' +
    '(Debian/Ubuntu: apt-get install g++ make python3; Fedora: dnf install gcc-c++ make python3; Alpine: apk add g++ make python3), then npm rebuild userfaultfd');
  process.exit(1);
}
console.warn(`userfaultfd: the native addon did not build on ${process.platform}; the simulator backend will be used`);
