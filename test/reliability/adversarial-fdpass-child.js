// Roles for test/reliability/adversarial-fdpass.test.js, one per process:
//
//   listen --socket S [--mode M] [--allow-uid U]...   a listener printing one JSON line per
//       event ({ event: 'ready' | 'received' | 'error', ... }); closes what it receives; ends
//       when stdin ends, printing { event: 'done', errors, received, cpuUs }.
//   handler42 --socket S                              answers the first fault of the first uffd
//       it receives with 0x42 bytes, from JavaScript, and ends.
//   peer --socket S                                   sends a uffd for one page, then reads the
//       page from its main thread; prints { byte }.
const { parseArgs } = require('util');
const path = require('path');
const { Userfaultfd, Region, sendUffd, listenForUffd, constants } = require(path.join(__dirname, '..', '..', 'dist'));

const { positionals: [role], values: opts } = parseArgs({
  allowPositionals: true,
  options: {
    socket: { type: 'string' },
    mode: { type: 'string' },
    'allow-uid': { type: 'string', multiple: true },
  },
});
const PAGE = constants.pageSize;
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function listen() {
  const options = {};
  if (opts.mode !== undefined) options.mode = parseInt(opts.mode, 8);
  if (opts['allow-uid']) options.allowUids = opts['allow-uid'].map(Number);
  const l = listenForUffd(opts.socket, options);
  l.on('connectionError', (e) => say({ event: 'error', code: e.code, uid: e.peer && e.peer.uid }));
  (async () => {
    for await (const item of l) {
      say({ event: 'received', payload: item.payload.toString(), uid: item.peer.uid });
      item.uffd.close();
    }
  })();
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => {
    const cpu = process.cpuUsage();
    say({ event: 'done', errors: l.errors, received: l.received, cpuUs: cpu.user + cpu.system });
    l.close();
  });
  say({ event: 'ready', pid: process.pid });
}

async function handler42() {
  const l = listenForUffd(opts.socket);
  say({ event: 'ready', pid: process.pid });
  const { value } = await l.next();
  l.close();
  // One page, one fault: once it is answered (or the guard took it) the handler is done.
  const outcome = await new Promise((resolve) => {
    value.uffd.on('pagefault', (f) => {
      value.uffd.copy(f.address & ~BigInt(PAGE - 1), Buffer.alloc(PAGE, 0x42));
      resolve({ event: 'done', answered: 1, tid: f.tid });
    });
    value.uffd.on('error', (e) => resolve({ event: 'done', answered: 0, error: e.code }));
  });
  value.uffd.close();
  say(outcome);
}

function peer() {
  const region = Region.map(PAGE);
  const uffd = Userfaultfd.open();
  uffd.register(region);
  sendUffd(opts.socket, uffd, 'peer');
  // The main thread faults; the handler, in another process, answers.
  say({ byte: new Uint8Array(region.buffer)[0], pid: process.pid });
}

({ listen, handler42, peer })[role]();
