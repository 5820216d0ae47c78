// Printed once per run: which backend the suite exercises, and how the kernel was reached.
const { probe } = require('../dist');

const p = probe({ backend: 'native' });
if (p.available) {
  console.log(`backend: native via ${p.via} (kernel features: ${p.features.join(' ')})`);
} else {
  console.log(`backend: native unavailable (${p.reason}); native-only tests will be skipped`);
}

// USERFAULTFD_BACKEND=simulator replaces 'auto' process-wide: `USERFAULTFD_BACKEND=simulator
// npm test` runs the shared suites (test/conformance, test/simulator, the smoke test) with
// 'auto' meaning the simulator. Everything else tests this machine's kernel, its tools and its
// examples, and runs without the override (children it spawns included).
const path = require('path');
const forced = process.env.USERFAULTFD_BACKEND;
const SHARED = ['conformance', 'simulator', 'smoke.test.js'].map((p) => path.join(__dirname, p));
exports.mochaHooks = {
  beforeEach() {
    const file = this.currentTest.file || '';
    if (forced !== undefined && !SHARED.some((p) => file.startsWith(p))) delete process.env.USERFAULTFD_BACKEND;
  },
  afterEach() {
    if (forced !== undefined) process.env.USERFAULTFD_BACKEND = forced;
  },
};
