// Run by worker-teardown-fdpass.test.js: `node worker-teardown-fdpass-child.js <socketDir> <rounds>`.
// Each round: a Worker listens with listenForUffd, two sender Workers send it uffds as fast as
// they can, and the listener Worker is terminated while fds are arriving. Prints one JSON line:
// the fds open (and which kinds) before the rounds and after, and what was sent per round.
'use strict';
const fs = require('fs');
const path = require('path');
const { Worker } = require('worker_threads');

const DIST = path.join(__dirname, '..', '..', 'dist');
const [dir, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 4);

const LISTENER = `
  const { parentPort, workerData } = require('worker_threads');
  const { listenForUffd } = require(workerData.dist);
  const l = listenForUffd(workerData.sock, { onError() {} });
  (async () => { for await (const r of l) r.uffd.close(); })();
  parentPort.postMessage('listening');
`;
const SENDER = `
  const { parentPort, workerData } = require('worker_threads');
  const { Userfaultfd, sendUffd } = require(workerData.dist);
  const uffd = Userfaultfd.open({ backend: 'native' });
  const stop = new Int32Array(workerData.stop);
  let sent = 0;
  parentPort.postMessage('ready');
  while (Atomics.load(stop, 0) === 0) {
    try {
      sendUffd(workerData.sock, uffd, 'x');
      sent++;
    } catch {
      // the listener is gone: ECONNREFUSED until told to stop
    }
  }
  uffd.close();
  parentPort.postMessage(sent);
`;

function fds() {
  const kinds = {};
  for (const f of fs.readdirSync('/proc/self/fd')) {
    let k;
    try {
      k = fs.readlinkSync(`/proc/self/fd/${f}`).replace(/\d+/g, 'N');
    } catch {
      k = 'gone';
    }
    kinds[k] = (kinds[k] || 0) + 1;
  }
  return kinds;
}

function next(w, event) {
  return new Promise((resolve, reject) => {
    w.once(event, resolve);
    w.once('error', reject);
  });
}

async function round(i) {
  const sock = path.join(dir, `r${i}.sock`);
  const listener = new Worker(LISTENER, { eval: true, workerData: { dist: DIST, sock } });
  await next(listener, 'message');
  const stop = new SharedArrayBuffer(4);
  const senders = [0, 1].map(() => new Worker(SENDER, { eval: true, workerData: { dist: DIST, sock, stop } }));
  // Listened for now: a sender may exit before the other's last message arrives.
  const exited = senders.map((s) => next(s, 'exit'));
  await Promise.all(senders.map((s) => next(s, 'message')));
  // Let fds flow, then terminate the listener with more on the way.
  await new Promise((resolve) => setTimeout(resolve, 30));
  const exitCode = await listener.terminate();
  Atomics.store(new Int32Array(stop), 0, 1);
  const sent = await Promise.all(senders.map((s) => next(s, 'message')));
  await Promise.all(exited);
  return { exitCode, sent: sent[0] + sent[1] };
}

(async () => {
  // A first round loads what a process keeps once it has run a Worker with the addon.
  await round(0);
  const before = fds();
  const results = [];
  for (let i = 1; i <= rounds; i++) results.push(await round(i));
  console.log(JSON.stringify({ before, after: fds(), rounds: results }));
})().catch((e) => {
  console.log(JSON.stringify({ error: e.stack }));
  process.exitCode = 1;
});
