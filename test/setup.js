// Printed once per run: which backend the suite exercises, and how the kernel was reached.
const { probe } = require('../dist');

const p = probe({ backend: 'native' });
if (p.available) {
  console.log(`backend: native via ${p.via} (kernel features: ${p.features.join(' ')})`);
} else {
  console.log(`backend: native unavailable (${p.reason}); native-only tests will be skipped`);
}
