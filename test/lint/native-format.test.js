// `npm run lint` after `npm ci` alone: the native half (clang-format) comes from the pinned
// @wasm-fmt/clang-format devDependency, so it runs with no clang-format on the system, and it
// still fails on C++ that is not formatted.
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { findNpmCli, skipWithReason } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');
const pkg = require('../../package.json');

describe('lint: clang-format from the devDependency (npm run lint:native)', function () {
  this.timeout(120000);
  let tmp;
  let env;
  before(function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-lint-'));
    // A PATH with node and sh only: no system clang-format can answer.
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    env = { HOME: process.env.HOME || os.homedir(), PATH: bin, LANG: 'C' };
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the formatter is a devDependency pinned to one version, and the lockfile has that version', function () {
    const wanted = pkg.devDependencies['@wasm-fmt/clang-format'];
    assert.match(wanted, /^\d+\.\d+\.\d+$/, `not pinned: ${wanted}`);
    const lock = require('../../package-lock.json');
    assert.strictEqual(lock.packages['node_modules/@wasm-fmt/clang-format'].version, wanted);
    assert.match(pkg.scripts.lint, /lint:native/);
    assert.match(pkg.scripts['lint:native'], /^clang-format --dry-run --Werror /);
  });

  it('passes on native/ with no clang-format on the PATH (npm puts node_modules/.bin first)', function () {
    const npm = findNpmCli();
    if (!npm) skipWithReason(this, 'npm is not on the PATH');
    const which = spawnSync('/bin/sh', ['-c', 'command -v clang-format'], { env });
    assert.notStrictEqual(which.status, 0, 'a clang-format is reachable without npm');
    const r = spawnSync(process.execPath, [npm, 'run', '--silent', 'lint:native'], { cwd: ROOT, env, encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stdout + r.stderr);
  });

  it('fails, naming the file and line, on C++ that is not formatted', function () {
    const dir = path.join(tmp, 'native');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(ROOT, '.clang-format'), path.join(tmp, '.clang-format'));
    fs.writeFileSync(path.join(dir, 'bad.cc'), 'int  f( int x ){return x+1;}\n');
    const cf = path.join(ROOT, 'node_modules', '.bin', 'clang-format');
    const r = spawnSync(process.execPath, [cf, '--dry-run', '--Werror', 'native/bad.cc'], { cwd: tmp, env, encoding: 'utf8' });
    assert.notStrictEqual(r.status, 0, 'unformatted code passed');
    assert.match(r.stderr, /native\/bad\.cc:1:\d+: .*error: .*code should be clang-formatted/);
    // And the same file formatted passes.
    fs.writeFileSync(path.join(dir, 'bad.cc'), 'int f(int x) { return x + 1; }\n');
    const ok = spawnSync(process.execPath, [cf, '--dry-run', '--Werror', 'native/bad.cc'], { cwd: tmp, env, encoding: 'utf8' });
    assert.strictEqual(ok.status, 0, ok.stderr);
  });
});
