#!/usr/bin/env node
// Fails when docs/api (committed TypeDoc output) or docs/api-summary.md (scripts/api-summary.js)
// differs from what the current lib/ generates: the reference must never drift from the code.
// `npm run docs` regenerates both.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const committed = path.join(root, 'docs', 'api');
const fresh = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-docs-'));

function files(dir, base = dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p, base) : [path.relative(base, p)];
  }).sort();
}

const summary = path.join(root, 'docs', 'api-summary.md');
if (fs.readFileSync(summary, 'utf8') !== require('./api-summary').summarize()) {
  console.error('docs/api-summary.md is stale: run `npm run docs` and commit.');
  process.exitCode = 1;
} else {
  console.log('docs/api-summary.md is current');
}

try {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', fresh, '--logLevel', 'Warn'],
    { cwd: root, stdio: 'inherit' });
  const a = files(committed);
  const b = files(fresh);
  const stale = [...new Set([...a, ...b])].filter((f) => !a.includes(f) || !b.includes(f) ||
    !fs.readFileSync(path.join(committed, f)).equals(fs.readFileSync(path.join(fresh, f))));
  if (stale.length) {
    console.error(`docs/api is stale (${stale.length} page(s) differ): run \`npm run docs\` and commit.`);
    for (const f of stale.slice(0, 20)) console.error(`  ${f}`);
    process.exitCode = 1;
  } else {
    console.log(`docs/api is current (${a.length} pages)`);
  }
} finally {
  fs.rmSync(fresh, { recursive: true, force: true });
}
