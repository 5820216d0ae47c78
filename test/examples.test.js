// Runs every example: examples/*.js and examples/<name>/index.js, each in a child with a timeout,
// expecting exit 0. An example says how it is run with comment lines at its top, or (for a
// directory) with examples/<name>/test.json — see docs/development.md:
//   // test-args: --size 16MiB            arguments (split on spaces; JSON array also accepted)
//   // test-timeout: 60000                milliseconds before the child is killed (default 30000)
//   // test-env: KEY=value OTHER=value    extra environment
//   // test-requires: native root linux   skip (with the reason printed) unless all hold
//   // test-expect: <regex>               stdout must match
//   // test-skip: <reason>                never run by the suite
// test.json: { "args": [...], "timeoutMs": n, "env": {...}, "requires": [...], "expect": "regex",
//              "skip": "reason", "main": "index.js" }
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { runChild, skipWithReason, describeNative } = require('./helpers');

const DIR = path.join(__dirname, '..', 'examples');
const HEADER_LINES = 30;

function splitArgs(s) {
  const t = s.trim();
  if (t.startsWith('[')) return JSON.parse(t);
  return t === '' ? [] : t.split(/\s+/);
}

function parseEnv(s) {
  const env = {};
  for (const kv of s.trim().split(/\s+/)) {
    if (!kv) continue;
    const i = kv.indexOf('=');
    env[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '1' : kv.slice(i + 1);
  }
  return env;
}

/** The run spec of one example file, from its leading comment lines. */
function fromComments(file) {
  const spec = {};
  const head = fs.readFileSync(file, 'utf8').split('\n').slice(0, HEADER_LINES);
  for (const line of head) {
    const m = /^\s*\/\/\s*test-(args|timeout|env|requires|expect|skip):\s?(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    if (key === 'args') spec.args = splitArgs(value);
    else if (key === 'timeout') spec.timeoutMs = Number(value);
    else if (key === 'env') spec.env = { ...spec.env, ...parseEnv(value) };
    else if (key === 'requires') spec.requires = [...(spec.requires || []), ...value.trim().split(/\s+/)];
    else if (key === 'expect') spec.expect = value.trim();
    else if (key === 'skip') spec.skip = value.trim() || 'test-skip';
  }
  return spec;
}

function discover() {
  if (!fs.existsSync(DIR)) return [];
  const out = [];
  for (const entry of fs.readdirSync(DIR, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(DIR, entry.name);
    if (entry.isFile() && /\.(c|m)?js$/.test(entry.name)) {
      out.push({ name: entry.name, file: full, spec: fromComments(full) });
    } else if (entry.isDirectory()) {
      const jsonFile = path.join(full, 'test.json');
      const json = fs.existsSync(jsonFile) ? JSON.parse(fs.readFileSync(jsonFile, 'utf8')) : {};
      const main = path.join(full, json.main || 'index.js');
      if (!fs.existsSync(main)) continue; // a helper directory, not an example
      out.push({ name: `${entry.name}/`, file: main, spec: { ...fromComments(main), ...json } });
    }
  }
  return out;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** `test-requires: native` puts an example under describeNative, the one gate on the kernel. */
const needsKernel = (ex) => (ex.spec.requires || []).includes('native');

function unmet(requires = []) {
  for (const r of requires) {
    if (r === 'root' && !isRoot) return 'not running as root';
    if (r === 'linux' && process.platform !== 'linux') return 'not Linux';
    if (!['native', 'root', 'linux'].includes(r)) return `unknown requirement '${r}'`;
  }
  return null;
}

/** The test of one example: run in a child as its spec says, it exits 0. */
function runsAndExits0(ex) {
  const timeoutMs = ex.spec.timeoutMs || 30000;
  it(`${ex.name}${ex.spec.args && ex.spec.args.length ? ' ' + ex.spec.args.join(' ') : ''}`, async function () {
    this.timeout(timeoutMs + 10000);
    if (ex.spec.skip) {
      skipWithReason(this, `${ex.spec.skip}`);
    }
    const why = unmet(ex.spec.requires);
    if (why) {
      skipWithReason(this, `${why}`);
    }
    const r = await runChild(ex.file, { isFile: true, args: ex.spec.args || [], env: ex.spec.env || {}, timeoutMs });
    const output = `\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
    assert.strictEqual(r.timedOut, false, `killed after ${timeoutMs} ms${output}`);
    assert.strictEqual(r.signal, null, `died of ${r.signal}${output}`);
    assert.strictEqual(r.code, 0, `exit ${r.code}${output}`);
    if (ex.spec.expect) assert.match(r.stdout, new RegExp(ex.spec.expect), output);
  });
}

describe('examples: every file in examples/ runs and exits 0', function () {
  const examples = discover();
  it('finds the examples, the README quick start among them', function () {
    assert.ok(examples.some((e) => e.name === 'quick-start.js'), examples.map((e) => e.name).join(', '));
  });

  it("README's Usage example is examples/quick-start.js, 15 lines", function () {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const usage = readme.slice(readme.indexOf('## Usage'));
    const block = /```js\n([\s\S]*?)```/.exec(usage)[1].trimEnd();
    const file = fs.readFileSync(path.join(DIR, 'quick-start.js'), 'utf8').split('\n')
      .filter((l) => !/^\/\//.test(l)).join('\n').trim();
    assert.strictEqual(block, file);
    assert.strictEqual(block.split('\n').length, 15);
  });

  for (const ex of examples.filter((e) => !needsKernel(e))) runsAndExits0(ex);
});

describeNative('examples: those whose test-requires names native', function () {
  for (const ex of discover().filter(needsKernel)) runsAndExits0(ex);
});

describe('examples: command lines a person types', function () {
  it('postcopy --help prints its usage and exits 0; an unknown option prints usage, exit 2, no stack', async function () {
    const file = path.join(DIR, 'postcopy', 'index.js');
    const help = await runChild(file, { isFile: true, args: ['--help'], timeoutMs: 10000 });
    assert.deepStrictEqual([help.code, help.signal], [0, null], help.stderr);
    assert.match(help.stdout, /^usage: node examples\/postcopy\/index\.js/);
    const bad = await runChild(file, { isFile: true, args: ['--bogus'], timeoutMs: 10000 });
    assert.strictEqual(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /Unknown option '--bogus'[\s\S]*usage:/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'a stack trace was printed');
  });

  it('migrate --help prints the usage; a bad --mode exits 2 with it', async () => {
    const file = path.join(DIR, 'migrate', 'index.js');
    const help = await runChild(file, { isFile: true, args: ['--help'] });
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^usage: .*--mode precopy\|postcopy-after-precopy\|stopcopy/s);
    const bad = await runChild(file, { isFile: true, args: ['--mode', 'teleport'] });
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /--mode must be precopy, postcopy-after-precopy, stopcopy \(or the older hybrid, postcopy\)[\s\S]*usage:/);
  });
});
