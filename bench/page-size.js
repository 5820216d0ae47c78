// The kernel's base page size, for the benchmarks that run before (or without) loading the
// addon: arm64 kernels run 4, 16 or 64 KiB pages, so no benchmark assumes 4096.
const { execFileSync } = require('child_process');

module.exports = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());
