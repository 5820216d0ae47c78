// The `userfaultfd` command line's errors, as a user meets them: every usage error is one line
// naming the problem and the fix, then a pointer to --help, and exit status 2; no stack trace
// unless --debug or NODE_DEBUG=userfaultfd. (Errors that need the kernel, such as a socket that
// cannot be bound, are in test/native/firecracker-handler-cli.test.js.)
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'userfaultfd.js');

function run(args, env = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NODE_DEBUG: '', ...env }, encoding: 'utf8', timeout: 30000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts the shape of a usage error: two lines, the first `program: problem; fix`, exit 2. */
function assertUsageError(r, program, problem, fix) {
  assert.strictEqual(r.code, 2, r.stdout + r.stderr);
  assert.strictEqual(r.stdout, '');
  const lines = r.stderr.split('\n');
  assert.strictEqual(lines.length, 3, `not one line plus the pointer:\n${r.stderr}`);
  assert.strictEqual(lines[2], '');
  assert.ok(lines[0].startsWith(`${program}: `), lines[0]);
  assert.match(lines[0], problem);
  assert.match(lines[0], fix);
  assert.strictEqual(lines[1], `Run '${program} --help' for usage.`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
}

describe('the command line: errors name the problem and the fix, exit 2', function () {
  this.timeout(60000);
  let tmp;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-cli-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('an unknown command suggests the nearest one, or lists them', function () {
    assertUsageError(run(['doctr']), 'userfaultfd', /unknown command 'doctr'/, /did you mean 'doctor'\?/);
    assertUsageError(run(['frobnicate']), 'userfaultfd', /unknown command 'frobnicate'/, /the commands are doctor, firecracker-handler, help/);
  });

  it('an unknown option is quoted evenly and the nearest known one suggested (not parseArgs\' own text)', function () {
    const r = run(['doctor', '--jsn']);
    assertUsageError(r, 'userfaultfd doctor', /unknown option '--jsn'/, /did you mean '--json'\?/);
    assert.doesNotMatch(r.stderr, /To specify a positional argument/);
    assertUsageError(run(['--fulll']), 'userfaultfd doctor', /unknown option '--fulll'/, /did you mean '--full'\?/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--peer', '2']), 'userfaultfd firecracker-handler',
      /unknown option '--peer'/, /did you mean '--peers'\?/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--zzzzzz']), 'userfaultfd firecracker-handler',
      /unknown option '--zzzzzz'/, /the options are --peers, --on-error, /);
  });

  it('doctor with an extra argument names the argument, not a command "doctor extra"', function () {
    const r = run(['doctor', '--json', '--full', 'extra']);
    assertUsageError(r, 'userfaultfd doctor', /unexpected argument 'extra'/, /doctor takes options only/);
    assert.doesNotMatch(r.stderr, /doctor extra/);
    assertUsageError(run(['doctor', '--json=yes']), 'userfaultfd doctor', /option '--json' takes no value/, /write '--json' alone/);
    assertUsageError(run(['doctor', '--full', '--user-mode-only']), 'userfaultfd doctor', /contradict/, /give one of them/);
  });

  it('help, --help and help <command> print usage (exit 0); the usage line has --user-mode-only', function () {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const r = run(args);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage: userfaultfd \[doctor\] \[--json\] \[--full \| --user-mode-only\]\n/);
      assert.match(r.stdout, /userfaultfd firecracker-handler <socket> <memory-file>/);
      assert.match(r.stdout, /--debug/);
    }
    const doctor = run(['help', 'doctor']);
    assert.strictEqual(doctor.code, 0);
    assert.match(doctor.stdout, /^userfaultfd doctor \[--json\] \[--full \| --user-mode-only\]/);
    assert.strictEqual(run(['doctor', '--help']).stdout, doctor.stdout);
    const fc = run(['help', 'firecracker-handler']);
    assert.strictEqual(fc.code, 0);
    assert.match(fc.stdout, /^usage: userfaultfd firecracker-handler <socket> <memory-file> \[options\]/);
    assert.strictEqual(run(['firecracker-handler', '--help']).stdout, fc.stdout);
    assertUsageError(run(['help', 'nope']), 'userfaultfd', /no help for 'nope'/, /the commands are/);
  });

  it('firecracker-handler: missing and bad arguments, one line each', function () {
    const p = 'userfaultfd firecracker-handler';
    assertUsageError(run(['firecracker-handler']), p, /expected <socket> and <memory-file>, got neither/, /give the socket path/);
    assertUsageError(run(['firecracker-handler', 's']), p, /got only one/, /guest memory snapshot file/);
    assertUsageError(run(['firecracker-handler', 's', 'm', 'x']), p, /unexpected argument 'x'/, /give only <socket> and <memory-file>/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--peers', '0']), p, /--peers must be a positive integer \(got '0'\)/, /e\.g\. --peers 1/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--peers']), p, /option '--peers' needs a value/, /give it as '--peers VALUE'/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--on-error', 'ignore']), p, /--on-error must be kill or keep \(got 'ignore'\)/, /--on-error keep/);
    assertUsageError(run(['firecracker-handler', 's', 'm', '--allow-uid', 'bob']), p, /--allow-uid must be a numeric uid \(got 'bob'\)/, /id -u/);
  });

  it('firecracker-handler: a directory (or a FIFO) given as the memory file is refused at once', function () {
    const sock = path.join(tmp, 'fc.sock');
    const r = run(['firecracker-handler', sock, tmp]);
    assertUsageError(r, 'userfaultfd firecracker-handler', new RegExp(`the memory file ${tmp} is a directory`), /guest memory snapshot file/);
    assert.strictEqual(fs.existsSync(sock), false, 'the socket was created anyway');
    const fifo = path.join(tmp, 'fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0) {
      assertUsageError(run(['firecracker-handler', sock, fifo]), 'userfaultfd firecracker-handler', /is not a regular file/, /snapshot file/);
    }
  });

  it('an unexpected failure is one line without --debug, the stack with --debug or NODE_DEBUG=userfaultfd', function () {
    // A dist/ whose doctor throws: the package copied, its doctor replaced.
    const copy = path.join(tmp, 'pkg');
    for (const d of ['bin', 'dist', 'package.json']) fs.cpSync(path.join(ROOT, d), path.join(copy, d), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'build'), path.join(copy, 'build'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    fs.writeFileSync(path.join(copy, 'dist', 'tools', 'doctor.js'),
      "exports.main = () => { throw Object.assign(new Error('the report could not be made'), { code: 'EIO' }); };\n");
    const bin = path.join(copy, 'bin', 'userfaultfd.js');
    const plain = spawnSync(process.execPath, [bin, 'doctor'], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: '' } });
    assert.strictEqual(plain.status, 1);
    assert.strictEqual(plain.stderr, 'userfaultfd: EIO: the report could not be made (run with --debug for the stack)\n');
    const debug = spawnSync(process.execPath, [bin, 'doctor', '--debug'], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: '' } });
    assert.strictEqual(debug.status, 1);
    assert.match(debug.stderr, /^userfaultfd: Error: the report could not be made\n\s+at /);
    const env = spawnSync(process.execPath, [bin, 'doctor'], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'net,userfaultfd' } });
    assert.match(env.stderr, /\n\s+at /);
  });
});
