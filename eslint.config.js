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
  // Tests gate on the kernel only through test/helpers.js (test/README.md).
  {
    files: ['test/**/*.js'],
    ignores: ['test/helpers.js'],
    plugins: { tests: { rules: { 'no-probe-gate': require('./test/lint/no-probe-gate') } } },
    rules: { 'tests/no-probe-gate': 'error' },
  },
);
