#!/usr/bin/env node
// test-skip: it waits for a Firecracker to connect; test/native/firecracker.test.js runs it against test/fixtures/firecracker_peer.c
// A page-fault handler for Firecracker snapshot restore, a drop-in for Firecracker's example
// uffd handlers:
//
//   node examples/firecracker-handler/index.js <socket path> <memory file path>
//
// Listens on the Unix socket. Firecracker (or test/fixtures/firecracker_peer.c) connects and
// sends, in one message, its userfaultfd (SCM_RIGHTS) and a JSON body: an array of
// GuestRegionUffdMapping { base_host_virt_addr, size, offset, page_size } (older Firecrackers
// send page_size_kib instead). Each mapping is then served from the memory file by the native
// page source: faults are answered on the reader thread with no JavaScript per fault, with
// adaptive read-ahead. The kernel's answers are handled there too: EEXIST (the page is there:
// wake its thread, skip it), EAGAIN (an event is pending: answered again after reading it),
// ESRCH (the VM is gone: dropped quietly).
//
// Balloon deflation / MADV_DONTNEED in the guest reaches us as UFFD_EVENT_REMOVE: the pages in
// that span are served as zero pages when touched again (serve's { removed: 'zero' }, decided
// on the reader thread before any later fault is read), not refilled from the snapshot.
//
// Several VMs may connect; a connection that brings no fd, a body that is not valid mappings,
// or an fd that is not a userfaultfd is reported on stderr and the handler keeps serving.
// When every VM it served has gone (its connection closed and its process exited: the pid
// comes from SO_PEERCRED), and it has served at least `--peers N` of them (default 1: one
// handler per VM, as Firecracker runs them), it prints a one-line summary and exits 0.
'use strict';

const fs = require('fs');
const { parseArgs } = require('util');
const { listenForUffd, PageSource } = require('userfaultfd');

const PAGE = 4096;

function log(message) {
  process.stderr.write(`firecracker-handler: ${message}\n`);
}

/** The mappings of Firecracker's JSON body, checked against the memory file. Throws. */
function parseMappings(payload, memSize, pageSize) {
  let body;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch (e) {
    throw new Error(`the body is not JSON (${e.message}): ${JSON.stringify(payload.toString('utf8').slice(0, 80))}`);
  }
  if (!Array.isArray(body) || body.length === 0) throw new Error('the body is not a non-empty array of mappings');
  return body.map((m, i) => {
    const where = `mapping ${i}`;
    if (m === null || typeof m !== 'object') throw new Error(`${where} is not an object`);
    const { base_host_virt_addr: base, size, offset } = m;
    const ps = m.page_size !== undefined ? m.page_size : m.page_size_kib !== undefined ? m.page_size_kib * 1024 : undefined;
    for (const [name, v] of [['base_host_virt_addr', base], ['size', size], ['offset', offset], ['page_size', ps]]) {
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${where}: ${name} is not a non-negative integer (${v})`);
    }
    if (ps !== pageSize) throw new Error(`${where}: page size ${ps} is not supported (this handler serves ${pageSize}-byte pages)`);
    if (size === 0 || size % ps !== 0 || base % ps !== 0) throw new Error(`${where}: base and size must be page multiples`);
    if (offset + size > memSize) throw new Error(`${where}: offset + size (${offset + size}) is past the memory file (${memSize} bytes)`);
    return { base: BigInt(base), size, offset };
  });
}

/** JS's answer to a fault in a mapping: the page from the file, UFFDIO_COPY. */
function answerFromFile(uffd, mappings, memFd, fault) {
  const page = fault.address - (fault.address % BigInt(uffd.pageSize));
  const m = mappings.find((x) => page >= x.base && page < x.base + BigInt(x.size));
  const buf = Buffer.alloc(uffd.pageSize);
  if (m) fs.readSync(memFd, buf, 0, buf.length, m.offset + Number(page - m.base));
  try {
    uffd.copy(page, buf);
  } catch (e) {
    if (e.code === 'EEXIST') uffd.wake({ start: page, length: uffd.pageSize });
    else if (e.code === 'EAGAIN') setImmediate(() => answerFromFile(uffd, mappings, memFd, fault));
    else if (e.code !== 'ESRCH' && e.code !== 'ENOENT') throw e;
  }
}

/** false once the process is gone (or a zombie). */
function isAlive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Resolves when the peer has gone: its connection closed and its process ended. */
function peerGone(peer, peerClosed) {
  return new Promise((resolve) => {
    let closed = false;
    const check = () => {
      if (peer.pid > 0 ? !isAlive(peer.pid) && closed : closed) {
        clearInterval(timer);
        resolve();
      }
    };
    // The process can end with its socket still open in a child; the socket can close with the
    // process still running (a sender that hung up after sending): both must have happened.
    const timer = setInterval(() => {
      if (peer.pid > 0 && !isAlive(peer.pid)) closed = true;
      check();
    }, 100);
    peerClosed.then(() => {
      closed = true;
      check();
    });
  });
}

async function main(argv) {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { peers: { type: 'string', default: '1' } } });
  const wantPeers = Number(values.peers);
  if (positionals.length !== 2 || !Number.isInteger(wantPeers) || wantPeers < 1) {
    process.stderr.write('usage: node examples/firecracker-handler/index.js <socket path> <memory file path> [--peers N]\n');
    return 2;
  }
  const [socketPath, memPath] = positionals;
  const memFd = fs.openSync(memPath, 'r');
  const memSize = fs.fstatSync(memFd).size;
  const totals = { peers: 0, faults: 0, bytes: 0, removed: 0, rejected: 0 };
  let active = 0;
  let finished = false;
  const serving = new Set(); // the uffds of peers still here

  const listener = listenForUffd(socketPath, {
    onError(err) {
      totals.rejected++;
      log(`connection rejected: ${err.code}: ${err.message}`);
    },
  });

  const finish = () => {
    if (finished) return;
    finished = true;
    listener.close();
    for (const u of serving) {
      const s = u.stats();
      totals.faults += s.faults;
      totals.bytes += s.bytes;
      u.close(); // on a signal: the peers still here are let go (their faults retry as ordinary ones)
    }
    serving.clear();
    const mib = (totals.bytes / (1 << 20)).toFixed(1);
    process.stdout.write(`firecracker-handler: ${totals.peers} peer(s), ${totals.faults} faults, ${mib} MiB served, ` +
      `${totals.removed / PAGE} pages removed (zero on refault), ${totals.rejected} connection(s) rejected\n`);
  };
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);

  log(`listening on ${socketPath}, serving ${memPath} (${memSize} bytes)`);
  for await (const { uffd, payload, peer, peerClosed } of listener) {
    let mappings;
    try {
      mappings = parseMappings(payload, memSize, uffd.pageSize);
    } catch (e) {
      totals.rejected++;
      log(`peer pid ${peer.pid}: ${e.message}; its uffd is closed`);
      uffd.close();
      continue;
    }
    try {
      for (const m of mappings) {
        uffd.serve({ start: m.base, length: m.size }, PageSource.file(memPath, { offset: m.offset }), { removed: 'zero' });
      }
    } catch (e) {
      totals.rejected++;
      log(`peer pid ${peer.pid}: cannot serve its mappings: ${e.code || ''} ${e.message}`);
      uffd.close();
      continue;
    }
    // Listeners after serve(): the first one starts the reader thread, and faults already
    // queued (the VM runs from the moment it sent the fd) must meet the served ranges.
    uffd.on('error', (e) => log(`peer pid ${peer.pid}: ${e.code}: ${e.message}`));
    // A fault read between the first serve() (which starts the reader) and the last one
    // reaches JavaScript: answer it from the file here. Later faults never come this way.
    uffd.on('pagefault', (f) => answerFromFile(uffd, mappings, memFd, f));
    uffd.on('remove', (e) => {
      totals.removed += Number(e.end - e.start);
    });
    totals.peers++;
    active++;
    serving.add(uffd);
    log(`peer pid ${peer.pid} uid ${peer.uid}: serving ${mappings.length} mapping(s), ` +
      `${mappings.reduce((n, m) => n + m.size, 0)} bytes`);
    // (setImmediate: events the reader read before the peer went are delivered first.)
    peerGone(peer, peerClosed).then(() => new Promise((r) => setImmediate(r))).then(() => {
      if (!serving.delete(uffd)) return; // finished already
      const s = uffd.stats();
      totals.faults += s.faults;
      totals.bytes += s.bytes;
      uffd.close();
      log(`peer pid ${peer.pid} has gone (${s.faults} faults)`);
      if (--active === 0 && totals.peers >= wantPeers) finish();
    });
  }
  return 0;
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (e) => {
  log(`fatal: ${e.stack || e}`);
  process.exitCode = 1;
});
