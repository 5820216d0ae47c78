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
  // The layout (docs/development.md, "Layout"): each part imports only the parts below it.
  ...layers(),
  // Tests gate on the kernel only through test/helpers.js (test/README.md).
  {
    files: ['test/**/*.js'],
    ignores: ['test/helpers.js'],
    plugins: { tests: { rules: { 'no-probe-gate': require('./test/lint/no-probe-gate') } } },
    rules: { 'tests/no-probe-gate': 'error' },
  },
);

/**
 * lib/ in parts, top to bottom: tools (doctor, fd passing, the Firecracker handler) and the
 * two backends (kernel/, simulator/) over the core (the public classes and the one policy),
 * over the page sources, over the base (checks, errors, the ABI table, plain-data types). A part
 * may import only parts below it, and the two backends never import each other.
 */
function layers() {
  const tools = ['fdpass', 'doctor', 'firecracker-handler', 'index'];
  const backends = ['kernel', 'kernel/*', 'simulator', 'simulator/*'];
  const core = ['userfaultfd', 'region', 'backend', 'events', 'typed-events', 'source-overlap'];
  const sources = ['page-source', 'custom-source', 'http-source', 'working-set', 'snapshot', 'dirty'];
  const rule = (dir, names, why) => ({
    'no-restricted-imports': ['error', { patterns: [{ group: names.map((n) => `${dir}${n}`), message: why }] }],
  });
  return [
    {
      files: ['lib/args.ts', 'lib/errors.ts', 'lib/constants.ts', 'lib/types.ts', 'lib/fault-stats.ts', 'lib/native.ts'],
      rules: rule('./', [...tools, ...backends, ...core, ...sources], 'the base is below every other part of lib/'),
    },
    {
      files: sources.map((n) => `lib/${n}.ts`),
      rules: rule('./', [...tools, ...backends, ...core], 'a page source is data the core drives: it imports only the base'),
    },
    {
      files: core.map((n) => `lib/${n}.ts`),
      rules: rule('./', [...tools, ...backends, 'native'], 'the core carries no backend: backends register themselves'),
    },
    {
      files: ['lib/kernel/*.ts'],
      rules: rule('../', [...tools, 'simulator', 'simulator/*'], 'the backends are peers'),
    },
    {
      files: ['lib/simulator/*.ts'],
      rules: rule('../', [...tools, 'kernel', 'kernel/*', 'native'], 'the simulator runs where the addon cannot load'),
    },
  ];
}
