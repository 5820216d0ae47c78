#!/usr/bin/env node
// test-skip: it waits for a Firecracker to connect; test/native/firecracker.test.js runs it against test/fixtures/firecracker_peer.c
// A page-fault handler for Firecracker snapshot restore, in a page of the public API:
//
//   node examples/firecracker-handler/index.js <socket path> <memory file path>
//
// Firecracker connects and sends its userfaultfd with a JSON array of mappings
// { base_host_virt_addr, size, offset, page_size } (older releases: page_size_kib, which holds
// bytes). Each mapping is served from the memory file natively (no JavaScript per fault), in
// 4 KiB or 2 MiB pages; pages the balloon removes read as zeros when touched again. A VM that
// cannot be served is killed (its pid from SO_PEERCRED): left alone, it would wait forever on
// its first fault. The handler exits once the VM has gone.
//
// The full command, with several VMs, --on-error, --json, --record and --prefetch:
//   npx userfaultfd firecracker-handler <socket> <memory-file>   (docs/firecracker.md)
'use strict';

const fs = require('fs');
const { listenForUffd, PageSource } = require('userfaultfd');

const PAGE_SIZES = [4096, 2 << 20];

function mappingsOf(payload, memSize) {
  // A body sent again with the fd follows the first copy: the last copy counts.
  const text = payload.toString('utf8');
  const body = JSON.parse(text.slice(text.lastIndexOf('[')));
  if (!Array.isArray(body) || body.length === 0) throw new Error('the body is not an array of mappings');
  return body.map((m) => {
    const pageSize = m.page_size ?? m.page_size_kib; // both hold bytes
    if (!PAGE_SIZES.includes(pageSize)) throw new Error(`page size ${pageSize} is not supported`);
    if (!(m.offset + m.size <= memSize)) throw new Error('a mapping is past the end of the memory file');
    return { start: BigInt(m.base_host_virt_addr), length: m.size, offset: m.offset, pageSize };
  });
}

async function main([socketPath, memPath]) {
  if (!socketPath || !memPath) {
    process.stderr.write('usage: node examples/firecracker-handler/index.js <socket path> <memory file path>\n');
    return 2;
  }
  const listener = listenForUffd(socketPath, { awaitFd: true });
  for await (const { uffd, payload, peer, peerClosed } of listener) {
    listener.close(); // one VM per handler, as Firecracker runs them
    try {
      const mappings = mappingsOf(payload, fs.statSync(memPath).size);
      // The VM's vCPUs fault from the handshake on: a fault read before its mapping's serve()
      // faults again once that mapping is served, and its source answers it.
      for (const m of mappings) {
        uffd.serve(m, PageSource.file(memPath, { offset: m.offset }), { removed: 'zero', pageSize: m.pageSize });
      }
    } catch (e) {
      process.stderr.write(`firecracker-handler: vm pid ${peer.pid} cannot be served (${e.message}): killed\n`);
      if (peer.pid > 0) process.kill(peer.pid, 'SIGKILL');
      uffd.close();
      return 1;
    }
    uffd.on('error', (e) => process.stderr.write(`firecracker-handler: ${e.code}: ${e.message}\n`));
    // Served until Firecracker has gone: its process ended (it keeps the socket open till then;
    // a peer in a pid namespace we cannot see has pid 0: its connection closing says it).
    await (peer.pid <= 0 ? peerClosed : new Promise((resolve) => {
      const timer = setInterval(() => {
        try {
          process.kill(peer.pid, 0);
          if (!fs.readFileSync(`/proc/${peer.pid}/stat`, 'utf8').includes(') Z')) return;
        } catch {
          // gone
        }
        clearInterval(timer);
        resolve();
      }, 100);
    }));
    const s = uffd.stats();
    uffd.close();
    process.stdout.write(`firecracker-handler: vm pid ${peer.pid} served: ${s.faults} faults, ${s.bytes} bytes\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
