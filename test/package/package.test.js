// The package as a new user gets it: `npm pack`, install the tarball into an empty project
// (offline: the dependencies are in the npm cache after `npm ci`), require() and import it, run
// the README example and `userfaultfd doctor` — once built from source, once more with only the
// prebuilds (no compiler, make or python on the PATH: node-gyp-build must pick the prebuild).
//
// The tarball is the release one: `npm run pack:release` (scripts/pack-release.sh, which builds
// the linux-x64 and linux-arm64 prebuilds, one of them with Debian's cross g++, and packs), run in
// a scratch copy of this checkout so that its prebuilds/ is left alone. Without the cross g++
// (.ci/run installs it) the tarball is plain `npm pack` plus a fresh prebuild for this machine's
// arch, and the two-arch test skips, naming the package to install. With
// USERFAULTFD_TEST_PACKED_PREBUILDS=1 the checkout is packed with its prebuilds/ as they are.
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const PKG = require('../../package.json');
const { skipWithReason, findNpmCli } = require('../helpers');
const ARCH_DIR = `${process.platform}-${process.arch}`;
// The toolchain of the other arch the release tarball carries (Debian's cross g++).
const CROSS_TRIPLE = process.arch === 'arm64' ? 'x86_64-linux-gnu' : 'aarch64-linux-gnu';
/** ELF e_machine of each prebuild's arch. */
const ELF_MACHINE = { 'linux-x64': 62, 'linux-arm64': 183 };
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** process.env without npm's lifecycle variables (npm test sets dozens), plus `extra`. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === 'INIT_CWD' || k === 'USERFAULTFD_BACKEND') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * The running Node's own headers for node-gyp, where they are installed beside it (nothing to
 * download: CI and a user without npm's nodedir set, such as nobody in .ci/unprivileged).
 */
function localHeaders() {
  const prefix = path.resolve(process.execPath, '..', '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: prefix } : {};
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

describe('package: npm pack, install into an empty project, use it', function () {
  this.timeout(180000);
  let npmCli = null;
  let tmp = null;
  let tarball = null;
  let packedFiles = [];
  let plainPack = null;
  let stage = null;
  const consumers = {};

  function npm(args, { cwd, env }) {
    return sh(process.execPath, [npmCli, ...args], { cwd, env });
  }

  /** npm install <tarball> offline (the deps are cached), else preferring the cache. */
  function install(dir, env) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const common = ['install', '--no-audit', '--no-fund', '--no-save', '--foreground-scripts', tarball];
    let r = npm(['--offline', ...common], { cwd: dir, env });
    if (r.code !== 0 && /ENOTCACHED|offline/i.test(r.stdout + r.stderr)) {
      r = npm(['--prefer-offline', ...common], { cwd: dir, env });
    }
    return r;
  }

  function node(args, { cwd, env }) {
    return sh(process.execPath, args, { cwd, env });
  }

  before(function () {
    if (process.platform !== 'linux') {
      skipWithReason(this, `the prebuilds and this test are for Linux (this is ${process.platform})`);
    }
    npmCli = findNpmCli();
    if (!npmCli) {
      skipWithReason(this, 'npm pack is impossible: npm is not on the PATH');
    }
    for (const f of ['dist/index.js', 'dist/index.mjs', 'dist/tools/doctor.js']) {
      if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run npm run build:ts first`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-package-'));
    fs.chmodSync(tmp, 0o755);

    const packDir = path.join(tmp, 'packed');
    fs.mkdirSync(packDir);
    if (process.env.USERFAULTFD_TEST_PACKED_PREBUILDS === '1') {
      packCheckout(this, packDir);
      return;
    }
    if (sh('/bin/sh', ['-c', `command -v ${CROSS_TRIPLE}-g++`]).code !== 0) {
      console.log(`      note: no ${CROSS_TRIPLE}-g++ (apt-get install g++-${CROSS_TRIPLE.replace(/_/g, '-')}): ` +
        `the tarball gets this arch's prebuild only`);
      packCheckout(this, packDir);
      addHostPrebuild(this, packDir);
      return;
    }
    // The release path, as a maintainer runs it, in a copy of the checkout.
    this.timeout(900000);
    const copy = path.join(tmp, 'checkout');
    fs.mkdirSync(copy);
    // What the build needs, and every file the `files` whitelist names (its globs are in dist/, built by the release).
    const whitelisted = PKG.files.filter((f) => !f.includes('*') && fs.existsSync(path.join(ROOT, f)));
    for (const f of new Set(['package.json', 'tsconfig.json', 'lib', 'scripts', ...whitelisted])) {
      fs.cpSync(path.join(ROOT, f), path.join(copy, f), { recursive: true });
    }
    fs.rmSync(path.join(copy, 'prebuilds'), { recursive: true, force: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    // Plain `npm pack` first, with no prebuilds/ yet: it must say so (scripts/check-prebuilds.js).
    plainPack = npm(['pack', '--dry-run', '--json'], { cwd: copy, env: cleanEnv() });
    const release = sh('bash', [path.join(copy, 'scripts', 'pack-release.sh'), packDir], { cwd: copy, env: cleanEnv({ JOBS: '2' }), timeout: 900000 });
    assert.strictEqual(release.code, 0, `npm run pack:release failed:\n${release.stderr.split('\n').slice(-15).join('\n')}`);
    tarball = release.stdout.trim().split('\n').pop();
    assert.ok(fs.existsSync(tarball), `pack-release printed ${tarball}`);
    packedFiles = sh('tar', ['-tzf', tarball]).stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    stage = path.join(tmp, 'stage');
    fs.mkdirSync(stage);
    assert.strictEqual(sh('tar', ['-xzf', tarball, '-C', stage]).code, 0);
  });

  /** npm pack of the checkout as it is, as `npm publish` would (dist/ was built by pretest). */
  function packCheckout(ctx, packDir) {
    const pack = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: ROOT, env: cleanEnv() });
    if (pack.code !== 0) {
      skipWithReason(ctx, `npm pack is impossible here: ${(pack.stderr || pack.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    }
    const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[')))[0];
    packedFiles = info.files.map((f) => f.path);
    tarball = path.join(packDir, info.filename);
  }

  /**
   * The prebuild for this arch, fresh from this checkout's native/ (built in a scratch copy so
   * that the checkout's build/ is left alone), put into the tarball.
   */
  function addHostPrebuild(ctx, packDir) {
    const hasPacked = packedFiles.some((f) => f.startsWith(`prebuilds/${ARCH_DIR}/`));
    // scripts/prebuild-cross.sh with this machine's own g++, in a copy (it writes prebuilds/ there).
    const scratch = path.join(tmp, 'prebuild');
    fs.mkdirSync(scratch);
    for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(ROOT, f), path.join(scratch, f));
    fs.cpSync(path.join(ROOT, 'native'), path.join(scratch, 'native'), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(scratch, 'node_modules'));
    fs.cpSync(path.join(ROOT, 'scripts'), path.join(scratch, 'scripts'), { recursive: true });
    const pb = sh('bash', [path.join(scratch, 'scripts', 'prebuild-cross.sh'), process.arch], { cwd: scratch, env: cleanEnv({ JOBS: '2' }), timeout: 600000 });
    if (pb.code !== 0) {
      if (!hasPacked) skipWithReason(ctx, `no prebuild for ${ARCH_DIR} in the tarball and it could not be built: ${pb.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      console.log(`      note: the prebuild failed; testing the packed prebuild for ${ARCH_DIR} as it is`);
      return;
    }
    stage = path.join(tmp, 'stage');
    fs.mkdirSync(stage);
    const untar = sh('tar', ['-xzf', tarball, '-C', stage]);
    assert.strictEqual(untar.code, 0, untar.stderr);
    const dest = path.join(stage, 'package', 'prebuilds', ARCH_DIR);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.cpSync(path.join(scratch, 'prebuilds', ARCH_DIR), dest, { recursive: true });
    const repack = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: path.join(stage, 'package'), env: cleanEnv() });
    assert.strictEqual(repack.code, 0, repack.stderr);
    const info2 = JSON.parse(repack.stdout.slice(repack.stdout.indexOf('[')))[0];
    tarball = path.join(packDir, info2.filename);
    packedFiles = info2.files.map((f) => f.path);
  }

  after(function () {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the tarball holds what users need and nothing else (the files whitelist)', function () {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'SECURITY.md', 'binding.gyp', 'bin/userfaultfd.js',
      'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'dist/tools/doctor.js',
      'native/addon.cc', 'native/unsupported.cc', `prebuilds/${ARCH_DIR}/userfaultfd.node`]) {
      assert.ok(packedFiles.includes(f), `${f} is missing from the tarball`);
    }
    const unwanted = packedFiles.filter((f) =>
      /^(lib|test|bench|examples|scripts|build|docs|node_modules|\.ci|\.github)\//.test(f) ||
      (/\.map$/.test(f) && !/^dist\/.*\.js\.map$/.test(f)) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)) || /^\.|\/\./.test(f) ||
      ['tsconfig.json', 'package-lock.json', '.mocharc.json', 'typedoc.json'].includes(f));
    assert.deepStrictEqual(unwanted, []);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.match(pkg.scripts.install, /^node-gyp-build( |$)/);
    assert.deepStrictEqual(Object.keys(pkg.dependencies).sort(), ['node-addon-api', 'node-gyp-build']);
    // engines names the oldest Node.js the CI matrix runs (an end-of-life one it does not run is not claimed).
    const matrix = /^\s+node: \[([\d, ]+)\]/m.exec(fs.readFileSync(path.join(ROOT, '.github', 'workflows', 'ci.yml'), 'utf8'));
    assert.ok(matrix, 'no node matrix in .github/workflows/ci.yml');
    assert.strictEqual(pkg.engines.node, `>=${Math.min(...matrix[1].split(',').map(Number))}`);
  });

  /** The tarball's files, extracted (once). */
  function extracted() {
    if (stage === null) {
      stage = path.join(tmp, 'stage');
      fs.mkdirSync(stage);
      assert.strictEqual(sh('tar', ['-xzf', tarball, '-C', stage]).code, 0);
    }
    return path.join(stage, 'package');
  }

  it('the release tarball (npm run pack:release) holds linux-x64 and linux-arm64 prebuilds, each an ELF of its arch', function () {
    if (plainPack === null) {
      skipWithReason(this, `the release tarball was not built here (it needs ${CROSS_TRIPLE}-g++: apt-get install g++-${CROSS_TRIPLE.replace(/_/g, '-')})`);
    }
    for (const [dir, machine] of Object.entries(ELF_MACHINE)) {
      const f = `prebuilds/${dir}/userfaultfd.node`;
      assert.ok(packedFiles.includes(f), `${f} is missing from the tarball`);
      const elf = fs.readFileSync(path.join(extracted(), f));
      assert.strictEqual(elf.subarray(0, 4).toString('latin1'), '\x7fELF', `${f} is not an ELF file`);
      assert.strictEqual(elf[4], 2, `${f} is not 64-bit`);
      assert.strictEqual(elf.readUInt16LE(18), machine, `${f} is for ELF machine ${elf.readUInt16LE(18)}, not ${machine}`);
    }
  });

  it('plain npm pack says plainly that its tarball has no prebuilds', function () {
    if (plainPack === null) skipWithReason(this, 'runs with the release tarball (see the test above)');
    assert.strictEqual(plainPack.code, 0, plainPack.stderr);
    assert.match(plainPack.stderr, /userfaultfd: this tarball has no prebuilds for linux-x64 and linux-arm64: installing it there compiles the addon from source .*`npm run pack:release`/);
  });

  it('every sourceMappingURL in dist/ names a map in the tarball, and each map carries the sources it names', function () {
    const js = packedFiles.filter((f) => /^dist\/.*\.js$/.test(f));
    assert.ok(js.length > 10, `only ${js.length} .js files`);
    let maps = 0;
    for (const f of js) {
      const m = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(fs.readFileSync(path.join(extracted(), f), 'utf8'));
      if (m === null) continue;
      const mapFile = path.posix.join(path.posix.dirname(f), m[1]);
      assert.ok(packedFiles.includes(mapFile), `${f} points at ${mapFile}, which is not in the tarball`);
      const map = JSON.parse(fs.readFileSync(path.join(extracted(), mapFile), 'utf8'));
      assert.ok(map.sources.length > 0, mapFile);
      assert.strictEqual((map.sourcesContent || []).length, map.sources.length, `${mapFile} names sources it does not carry`);
      assert.ok(map.sourcesContent.every((c) => typeof c === 'string' && c.length > 0), mapFile);
      maps++;
    }
    assert.ok(maps > 10, `only ${maps} files point at a source map`);
  });

  describe('installed with a compiler, built from source (npm_config_build_from_source=true)', function () {
    let dir;
    let env;
    before(function () {
      dir = path.join(tmp, 'consumer-source');
      env = cleanEnv({ npm_config_build_from_source: 'true', JOBS: '2', ...localHeaders() });
      const r = install(dir, env);
      assert.strictEqual(r.code, 0, `npm install failed:\n${r.stdout}\n${r.stderr}`);
      env = cleanEnv();
      consumers.source = dir;
    });

    it('builds the addon from native/ and loads it from build/Release', function () {
      const pkgDir = path.join(dir, 'node_modules', PKG.name);
      assert.ok(fs.existsSync(path.join(pkgDir, 'build', 'Release', 'userfaultfd.node')));
      const r = node(['-e', "console.log(require('node-gyp-build').path(require('path').dirname(require.resolve('userfaultfd/package.json'))))"], { cwd: dir, env });
      assert.strictEqual(r.code, 0, r.stderr);
      assert.match(r.stdout.trim(), /build\/Release\/userfaultfd\.node$/);
    });

    it("require('userfaultfd') and import 'userfaultfd' give the same classes; deep imports are closed", function () {
      const cjs = node(['-e', `
        const u = require('userfaultfd');
        const p = u.probe();
        console.log(JSON.stringify({ names: Object.keys(u).sort(), backend: p.backend, available: p.available,
          open: typeof u.Userfaultfd.open, map: typeof u.Region.map }));
        try { require('userfaultfd/dist/base/native'); console.log('deep: open'); } catch (e) { console.log('deep:', e.code); }`], { cwd: dir, env });
      assert.strictEqual(cjs.code, 0, cjs.stderr);
      const [json, deep] = cjs.stdout.trim().split('\n');
      const c = JSON.parse(json);
      assert.strictEqual(c.open, 'function');
      assert.strictEqual(c.map, 'function');
      for (const n of ['Userfaultfd', 'Region', 'PageSource', 'UffdError', 'probe', 'constants']) assert.ok(c.names.includes(n), n);
      assert.strictEqual(deep, 'deep: ERR_PACKAGE_PATH_NOT_EXPORTED');

      const esm = node(['--input-type=module', '-e', `
        import def, { Userfaultfd, Region, probe } from 'userfaultfd';
        import { createRequire } from 'module';
        const cjs = createRequire(import.meta.url)('userfaultfd');
        console.log(JSON.stringify({ same: Userfaultfd === cjs.Userfaultfd && Region === cjs.Region && def === cjs,
          names: Object.keys(await import('userfaultfd')).sort(), backend: probe().backend }));`], { cwd: dir, env });
      assert.strictEqual(esm.code, 0, esm.stderr);
      const e = JSON.parse(esm.stdout.trim());
      assert.strictEqual(e.same, true);
      assert.deepStrictEqual(e.names.filter((n) => n !== 'default'), c.names);
      assert.strictEqual(e.backend, c.backend);
    });

    it("runs the README's quick start (examples/quick-start.js) against the installed package", function () {
      fs.copyFileSync(path.join(ROOT, 'examples', 'quick-start.js'), path.join(dir, 'quick-start.js'));
      const r = node(['quick-start.js'], { cwd: dir, env });
      if (r.code !== 0 && /unavailable/.test(r.stderr)) {
        skipWithReason(this, `no backend can serve here: ${r.stderr.trim().split('\n')[0]}`);
      }
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /<Buffer 2a 2a 2a 2a/);
    });

    it('npx userfaultfd doctor runs from the installed bin', function () {
      const bin = path.join(dir, 'node_modules', '.bin', 'userfaultfd');
      assert.ok(fs.existsSync(bin), 'node_modules/.bin/userfaultfd is missing');
      const r = sh(bin, ['doctor', '--json'], { cwd: dir, env });
      const j = JSON.parse(r.stdout);
      assert.strictEqual(r.code, j.usable ? 0 : 1);
      assert.strictEqual(j.package.version, PKG.version);
      assert.match(j.addon.path, /consumer-source\/node_modules\/userfaultfd\/build\/Release\/userfaultfd\.node$/);
      if (isRoot) assert.strictEqual(r.code, 0, r.stdout);
    });

    it('its types compile for a TypeScript consumer (CommonJS, ESM, and node10 resolution)', function () {
      const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      if (!fs.existsSync(tsc)) skipWithReason(this, 'typescript is not installed (npm ci installs it)');
      fs.writeFileSync(path.join(dir, 'use.ts'),
        "import { Userfaultfd, Region } from 'userfaultfd';\n" +
        'const u: Userfaultfd = Userfaultfd.open();\nconst r: Region = Region.map(4096);\n' +
        'u.register({ start: r.address, length: 4096 });\n' +
        "// @ts-expect-error a string is not a range\nu.register('0x1000');\nu.close();\n");
      fs.writeFileSync(path.join(dir, 'use.mts'), "import u, { probe } from 'userfaultfd';\nconst b: string = probe().backend;\nvoid u.Userfaultfd; void b;\n");
      fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
      fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'));
      const r = node([tsc, '--noEmit', '--strict', '--target', 'ES2021', '--module', 'node16', '--moduleResolution', 'node16',
        '--types', 'node', 'use.ts', 'use.mts'], { cwd: dir, env });
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      // Older resolution (no "exports"): the top-level "types" field.
      const old = node([tsc, '--noEmit', '--strict', '--target', 'ES2021', '--module', 'commonjs', '--moduleResolution', 'node10',
        '--types', 'node', 'use.ts'], { cwd: dir, env });
      assert.strictEqual(old.code, 0, old.stdout + old.stderr);
    });
  });

  describe('installed with only the prebuilds (PATH holds node and sh: no cc, g++, make, python)', function () {
    let dir;
    let env;
    let bin;
    before(function () {
      bin = path.join(tmp, 'bin-no-compiler');
      fs.mkdirSync(bin);
      fs.symlinkSync(process.execPath, path.join(bin, 'node'));
      fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
      env = { HOME: process.env.HOME || os.homedir(), PATH: bin, LANG: 'C' };
      dir = path.join(tmp, 'consumer-prebuilt');
    });

    it('npm install picks the prebuild: nothing is compiled', function () {
      for (const tool of ['cc', 'gcc', 'g++', 'make', 'python3']) {
        const w = sh('/bin/sh', ['-c', `command -v ${tool}`], { env });
        assert.notStrictEqual(w.code, 0, `${tool} is reachable: ${w.stdout}`);
      }
      const r = install(dir, env);
      assert.strictEqual(r.code, 0, `npm install failed:\n${r.stdout}\n${r.stderr}`);
      const pkgDir = path.join(dir, 'node_modules', PKG.name);
      assert.ok(!fs.existsSync(path.join(pkgDir, 'build')), 'a build/ directory was made');
      const p = node(['-e', "console.log(require('node-gyp-build').path(require('path').dirname(require.resolve('userfaultfd/package.json'))))"], { cwd: dir, env });
      assert.strictEqual(p.code, 0, p.stderr);
      assert.match(p.stdout.trim(), new RegExp(`prebuilds/${ARCH_DIR}/userfaultfd\\.node$`));
    });

    it('require, import, the quick start and doctor work on the prebuild', function () {
      if (!fs.existsSync(path.join(dir, 'node_modules', PKG.name))) skipWithReason(this, 'the prebuild-only install above did not complete');
      const cjs = node(['-e', "const u = require('userfaultfd'); const p = u.probe({ backend: 'native' }); console.log(p.available, p.reason || '')"], { cwd: dir, env });
      assert.strictEqual(cjs.code, 0, cjs.stderr);
      assert.doesNotMatch(cjs.stdout, /addon failed to load/);
      const esm = node(['--input-type=module', '-e', "import { Userfaultfd } from 'userfaultfd'; console.log(typeof Userfaultfd.open)"], { cwd: dir, env });
      assert.strictEqual(esm.code, 0, esm.stderr);
      assert.strictEqual(esm.stdout.trim(), 'function');
      fs.copyFileSync(path.join(ROOT, 'examples', 'quick-start.js'), path.join(dir, 'quick-start.js'));
      const ex = node(['quick-start.js'], { cwd: dir, env });
      if (!(ex.code !== 0 && /unavailable/.test(ex.stderr))) {
        assert.strictEqual(ex.code, 0, ex.stdout + ex.stderr);
        assert.match(ex.stdout, /<Buffer 2a 2a 2a 2a/);
      }
      const doc = node([path.join(dir, 'node_modules', PKG.name, 'bin', 'userfaultfd.js'), 'doctor', '--json'], { cwd: dir, env });
      const j = JSON.parse(doc.stdout);
      assert.match(j.addon.path, new RegExp(`prebuilds/${ARCH_DIR}/userfaultfd\\.node$`));
      if (isRoot) assert.strictEqual(doc.code, 0, doc.stdout);
    });

    it('control: forcing a build from source without a compiler fails (so the prebuild was what loaded)', function () {
      const r = install(path.join(tmp, 'consumer-forced-build'), { ...env, npm_config_build_from_source: 'true' });
      assert.notStrictEqual(r.code, 0, 'the build from source succeeded without a compiler on the PATH');
      assert.match(r.stdout + r.stderr, /gyp ERR!|not found|ENOENT/);
      // One line names what to install (bin/install-failed.js).
      assert.match(r.stdout + r.stderr, /userfaultfd: building the native addon failed; install a C\+\+17 compiler, make and python3 \(Debian\/Ubuntu: apt-get install g\+\+ make python3/);
    });
  });
});
