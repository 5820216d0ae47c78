// The published types, seen by a TypeScript user: consumer files import 'userfaultfd' by name
// (package.json "exports" -> dist/index.d.ts for require, dist/index.d.mts for import) and must
// compile; misuse (a string where a Range is wanted, ...) must not.
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { skipWithReason, scaled } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const STRICT = ['--noEmit', '--strict', '--target', 'ES2021', '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node'];

function tsc(args) {
  const r = spawnSync(process.execPath, [TSC, ...args], { cwd: ROOT, encoding: 'utf8', timeout: scaled(120000) });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('types: a TypeScript consumer of the package', function () {
  this.timeout(scaled(120000));

  before(function () {
    if (!fs.existsSync(TSC)) skipWithReason(this, 'typescript is not installed');
    if (!fs.existsSync(path.join(ROOT, 'dist', 'index.d.mts'))) throw new Error('dist/ is not built: npm run build:ts');
  });

  it('compiles the CommonJS and ESM consumers; every @ts-expect-error misuse is an error', function () {
    const r = tsc(['-p', path.join(__dirname, 'tsconfig.json')]);
    assert.strictEqual(r.code, 0, r.output);
  });

  it('the consumers compile for bundlers too (moduleResolution bundler)', function () {
    const r = tsc(['--noEmit', '--strict', '--target', 'ES2021', '--module', 'esnext', '--moduleResolution', 'bundler',
      '--types', 'node', path.join(__dirname, 'consumer.ts'), path.join(__dirname, 'consumer.mts')]);
    assert.strictEqual(r.code, 0, r.output);
  });

  it('a string where a Range is wanted fails to compile (TS2345)', function () {
    const r = tsc([...STRICT, path.join(__dirname, 'bad-range.ts')]);
    assert.notStrictEqual(r.code, 0, 'bad-range.ts compiled');
    assert.match(r.output, /bad-range\.ts\(5,\d+\): error TS2345: Argument of type 'string' is not assignable to parameter of type '(Region \| Range|Range \| Region)'/);
  });

  it('each misuse line, without its directive, is a compile error on that line', function () {
    const src = fs.readFileSync(path.join(__dirname, 'misuse.ts'), 'utf8').split('\n');
    const expected = [];
    const stripped = src.map((line, i) => {
      if (/^\s*\/\/ @ts-expect-error/.test(line)) {
        expected.push(i + 1); // the next line, 1-based, keeps its number: the directive becomes blank
        return '';
      }
      return line;
    }).join('\n');
    const file = path.join(__dirname, 'misuse.generated.ts');
    fs.writeFileSync(file, stripped);
    try {
      const r = tsc([...STRICT, file]);
      assert.notStrictEqual(r.code, 0);
      const lines = new Set([...r.output.matchAll(/misuse\.generated\.ts\((\d+),\d+\): error/g)].map((m) => Number(m[1])));
      for (const n of expected) assert.ok(lines.has(n + 1), `line ${n + 1} (${src[n].trim()}) compiled:\n${r.output}`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
