// The lint rule that keeps describeNative and the require* helpers the only gates: it flags each
// way a test file has decided from probe data whether to run, and none of the ways it reads
// probe data for an assertion or an expected value.
const { RuleTester } = require('eslint');
const globals = require('globals');
const rule = require('./no-probe-gate');

const tester = new RuleTester({
  languageOptions: { sourceType: 'commonjs', ecmaVersion: 2022, globals: { ...globals.node, ...globals.mocha } },
});
const gate = [{ messageId: 'gate' }];

tester.run('no-probe-gate', rule, {
  valid: [
    // What probe() returns, asserted.
    "const p = probe({ backend }); assert.strictEqual(p.available, true); if (backend === 'native') assert.ok(p.via);",
    // An expected value chosen from probe data.
    "it('t', async () => { if (nativeProbe.features.includes('THREAD_ID')) assert.strictEqual(done.tid, 1); });",
    "function expected() { if (nativeProbe.userModeOnly) return 'EFAULT'; return 'ok'; }",
    // A list built from probe data, the skip decided on the list (nothing to ask for).
    "const lacking = names.filter((f) => !nativeProbe.features.includes(f));\n" +
      "it('t', function () { if (lacking.length === 0) skipWithReason(this, 'every feature'); });",
    // Probe data in a skip's message, the skip decided by something else.
    "it('t', function () { if (!binding) skipWithReason(this, nativeProbe.reason || 'no addon'); });",
    // The helpers.
    "describeNative('x', { features: ['POISON'] }, () => { it('y', function () { requireLacking(this, 'native', 'MOVE', 'why'); }); });",
  ],
  invalid: [
    // A describe body that registers a placeholder and returns.
    {
      code: "describe('x', function () {\n  if (!nativeProbe.available) {\n    it('skipped', function () { skipWithReason(this, 'no'); });\n    return;\n  }\n  it('y', () => {});\n});",
      errors: gate,
    },
    // A hook or a test that skips.
    { code: "before(function () { if (!nativeProbe.available) skipWithReason(this, 'no kernel'); });", errors: gate },
    { code: "it('t', function () { if (!simulatorProbe.features.includes('POISON')) this.skip(); });", errors: gate },
    { code: "it('t', function () { if (nativeProbe.features.includes('POISON')) { skipWithReason(this, 'has it'); } });", errors: gate },
    // Probe results under another name, called in place, destructured, or from the package object.
    { code: "it('t', function () { const native = probe({ backend: 'native' }); if (!native.available) skipWithReason(this, native.reason); });", errors: gate },
    { code: "it('t', function () { if (!probe({ backend: 'native' }).available) skipWithReason(this, 'x'); });", errors: gate },
    { code: "const { features } = probe(); it('t', function () { if (!features.includes('MOVE')) this.skip(); });", errors: gate },
    { code: "it('t', function () { if (!u.probe().available) this.skip(); });", errors: gate },
    // A silent early return in a test: it passes without running.
    { code: "it('t', function () { if (!nativeProbe.available) return; assert.ok(true); });", errors: gate },
    // Tests registered, or skipped, on one side of a probe condition.
    { code: "if (nativeProbe.available) { it('a', () => {}); }", errors: gate },
    { code: "(nativeProbe.available ? describe : describe.skip)('x', () => {});", errors: gate },
    { code: "nativeProbe.available && it('x', () => {});", errors: gate },
  ],
});
