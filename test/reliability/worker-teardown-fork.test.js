// A Worker that listens for fork events is terminated while the events arrive: each carries a
// new uffd, installed in this process, that the Worker's JavaScript was to wrap. Whatever point
// the termination hits (queued, handed to JS, wrapped), none of those fds may stay open.
const assert = require('assert');
const { describeNative, requirePrivileged, runChild, scaled, PAGE } = require('../helpers');

describeNative('reliability: a Worker terminated while fork events arrive', function () {
  this.timeout(scaled(90000));

  it('leaves no userfaultfd open, over 6 rounds of spawns', async function () {
    requirePrivileged(this, 'EVENT_FORK', 'ptrace');
    const r = await runChild(`
      const fs = require('fs');
      const { spawn } = require('child_process');
      const { Worker } = require('worker_threads');
      require('./dist');
      const uffds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
        try { return fs.readlinkSync('/proc/self/fd/' + fd) === 'anon_inode:[userfaultfd]'; } catch { return false; }
      }).length;
      const before = uffds();
      const rounds = [];
      (async () => {
        for (let round = 0; round < 6; round++) {
          const w = new Worker(\`
            const { parentPort, workerData } = require('worker_threads');
            const { Userfaultfd, Region } = require(workerData.dist);
            const uffd = Userfaultfd.open({ features: ['EVENT_FORK'] });
            const region = Region.map(4 * ${PAGE});
            uffd.register(region);
            let forks = 0;
            const kept = [];
            uffd.on('fork', (e) => { forks++; kept.push(e.uffd); parentPort.postMessage(forks); });
            parentPort.postMessage(0);
          \`, { eval: true, workerData: { dist: require('path').resolve('dist') } });
          let forks = 0;
          w.on('message', (n) => { forks = n; });
          await new Promise((res) => w.once('message', res));
          // Spawns while the Worker reads their fork events; terminate it mid-flood.
          const children = [];
          for (let i = 0; i < 40; i++) children.push(new Promise((res) => spawn('true').on('close', res).on('error', res)));
          await new Promise((res) => setTimeout(res, 15 + round * 10));
          await w.terminate();
          await Promise.all(children);
          rounds.push(forks);
        }
        await new Promise((res) => setTimeout(res, 200));
        console.log(JSON.stringify({ before, after: uffds(), rounds }));
      })();
    `, { timeoutMs: 80000 });
    assert.strictEqual(r.timedOut, false, r.stderr);
    assert.strictEqual(r.signal, null, r.stderr);
    assert.strictEqual(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.ok(out.rounds.some((n) => n > 0), `no fork event reached a Worker: ${r.stdout}`);
    assert.strictEqual(out.after, out.before, `uffds open before ${out.before}, after ${out.after} (fork events per round ${out.rounds})`);
  });
});
