// ESLint for the TypeScript in lib/ and the JavaScript around it (bin, examples, bench, tests).
// Recommended rules only: the aim is catching mistakes (unused names, unreachable code), not style.
'use strict';
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

module.exports = tseslint.config(
  { ignores: ['dist/**', 'build/**', 'docs/api/**', 'node_modules/**', 'prebuilds/**', 'test/types/misuse*.ts'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', ecmaVersion: 2022, globals: { ...globals.node, ...globals.mocha } },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2022, globals: globals.node },
  },
  ...tseslint.configs.recommended.map((c) => ({ ...c, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  // The layout (docs/development.md, "Layout"): each part imports only the parts below it, no
  // file of lib/ is on an import circle (type imports too), and a file of lib/ over about 450
  // lines is one cohesive thing that says why in its header (and raises max-lines there).
  ...layers(),
  {
    files: ['lib/**/*.ts'],
    plugins: { layout: { rules: { 'no-import-cycle': require('./scripts/lint/no-import-cycle') } } },
    rules: { 'layout/no-import-cycle': 'error', 'max-lines': ['error', { max: 480 }] },
  },
  // Tests gate on the kernel only through test/helpers.js (test/README.md).
  {
    files: ['test/**/*.js'],
    ignores: ['test/helpers.js'],
    plugins: { tests: { rules: { 'no-probe-gate': require('./test/lint/no-probe-gate') } } },
    rules: { 'tests/no-probe-gate': 'error' },
  },
);

/**
 * lib/ in parts, one folder each, top to bottom: tools/ (doctor, fd passing, the Firecracker
 * handler) and the two backends (kernel/, simulator/) over core/ (the public classes and the one
 * policy), over sources/ (page sources, working sets, snapshots), over base/ (checks, errors, the
 * ABI table, plain-data types, the addon loader). A part may import only parts below it, the two
 * backends never import each other, and only the kernel backend and the tools touch the addon.
 * lib/index.ts, the entry, may import every part.
 */
function layers() {
  const rule = (patterns, why) => ({
    'no-restricted-imports': ['error', { patterns: [{ group: patterns, message: why }] }],
  });
  // Any relative path into one of lib/'s folders, from a file one folder deep.
  const parts = (...names) => names.flatMap((n) => [`../${n}`, `../${n}/*`]);
  return [
    {
      files: ['lib/base/*.ts'],
      rules: rule(parts('tools', 'kernel', 'simulator', 'core', 'sources'), 'base/ is below every other part of lib/'),
    },
    {
      files: ['lib/sources/*.ts'],
      rules: rule(parts('tools', 'kernel', 'simulator', 'core'), 'a page source is data the core drives: it imports only base/'),
    },
    {
      files: ['lib/core/*.ts'],
      rules: rule([...parts('tools', 'kernel', 'simulator'), '../base/native'], 'the core carries no backend: backends register themselves'),
    },
    {
      files: ['lib/kernel/*.ts'],
      rules: rule(parts('tools', 'simulator'), 'the backends are peers'),
    },
    {
      files: ['lib/simulator/*.ts'],
      rules: rule([...parts('tools', 'kernel'), '../base/native'], 'the simulator runs where the addon cannot load'),
    },
    {
      // A file directly in lib/ other than the entry would be a part nobody placed.
      files: ['lib/*.ts'],
      ignores: ['lib/index.ts'],
      rules: { 'no-restricted-syntax': ['error', { selector: 'Program', message: 'lib/ holds only index.ts: place the file in its part (docs/development.md, "Layout")' }] },
    },
  ];
}
