// How much slower than a native machine this one runs: UFFD_TEST_TIME_SCALE (default 1). The
// arm64 run under qemu TCG sets it (scripts/test-arm64.sh). It scales every deadline the suite
// sets (.mocharc.js's timeouts, `scaled()` in a test's this.timeout, child-process deadlines in
// helpers.startProcess), never what a test checks.
const raw = process.env.UFFD_TEST_TIME_SCALE;
const timeScale = raw === undefined || raw === '' ? 1 : Number(raw);
if (!(timeScale >= 1)) throw new Error(`UFFD_TEST_TIME_SCALE must be a number >= 1, not ${JSON.stringify(raw)}`);

/** A deadline of `ms` on a native machine, scaled for this one. */
const scaled = (ms) => Math.round(ms * timeScale);

module.exports = { timeScale, scaled };
