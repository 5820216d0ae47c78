'use strict';
// The arrival path's warm-up (lib/tools/criu-arrival.ts rehearse): criu-lazy-pages runs it
// before it listens, in its own process, so it must leave that process as it found it.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PageSource, constants } = require('../../dist');
const { rehearse } = require('../../dist/tools/criu-arrival');
const { pattern, describeNative } = require('../helpers');

const entries = (dir) => new Set(fs.readdirSync(dir));
const added = (before, after) => [...after].filter((x) => !before.has(x));

describeNative('criu-lazy-pages: the warm-up of the arrival path', function () {
  let dir;
  beforeEach(function () { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-arrival-test-')); });
  const tmpdir = process.env.TMPDIR;
  afterEach(function () {
    if (tmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdir;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no fd, thread, socket or temporary directory behind', async function () {
    this.timeout(20000);
    const file = path.join(dir, 'pages-1.img');
    fs.writeFileSync(file, pattern(constants.pageSize, 3));
    const source = PageSource.file(file, { mode: 'mmap' });
    await rehearse(source, constants.pageSize); // the first run starts libuv's pool and the like
    const fds = entries('/proc/self/fd');
    process.env.TMPDIR = dir; // os.tmpdir(), where it makes its throwaway socket's directory
    const tmp = entries(dir);
    const threads = entries('/proc/self/task');
    await rehearse(source, constants.pageSize);
    // The threads' eventfds and handles are closed from their close callbacks, a few loop turns on.
    for (let i = 0; i < 100 && added(fds, entries('/proc/self/fd')).length + added(threads, entries('/proc/self/task')).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepStrictEqual(added(fds, entries('/proc/self/fd')), []);
    assert.deepStrictEqual(added(tmp, entries(dir)), []);
    assert.deepStrictEqual(added(threads, entries('/proc/self/task')), []);
  });
});
