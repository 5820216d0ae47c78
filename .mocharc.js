// mocha's settings. The timeouts are a native machine's, scaled by UFFD_TEST_TIME_SCALE (an
// emulated arm64 kernel under qemu sets it; see test/helpers.js).
const { timeScale } = require('./test/time-scale');

module.exports = {
  require: ['test/setup.js'],
  timeout: Math.round(30000 * timeScale),
  slow: Math.round(2000 * timeScale),
  reporter: 'spec',
  extension: ['test.js'],
};
