'use strict';
// Firecracker-style restore seen from inside a KVM guest. test/fixtures/kvm_peer.c (a minimal
// VMM: guest memory registered with a userfaultfd and handed over Firecracker's socket, then
// vCPUs started at once, as Firecracker resumes) runs a guest that touches `--touched` of a
// `--size` memory file, in runs of 1-32 pages at scattered places in a shuffled order
// (bench/workload.js), each page read (a read fault) then written; the list is split between
// the vCPUs. The guest counts cycles (rdtsc) from its first instruction to its first touch and
// to its last; the VMM times the handshake to the last vCPU's halt on the host clock.
//
// Variants (VARIANTS below, one line each, run in random order):
//   c         a C handler thread shaped like Firecracker's example handler (bench/c/fc-handler.c:
//             poll, one read per event, one UFFDIO_COPY of one page per fault), built here
//   cli       `userfaultfd firecracker-handler` itself (adaptive read-ahead), as a process
//   serve-1   serve() as the handler calls it, one page per fault: the same work as c
//   serve-1-mmap  the same, the file mapped (PageSource.file mode 'mmap') as c maps it
//   lazy      serve() as the handler calls it (adaptive read-ahead), in this process
//   prefetch  serve({ prefetch }) with the set recorded by a first run
//   precopy   the whole memory file copied in (a full prefetch) before the vCPUs start
//   memory    the floor: guest memory already filled from the file, no userfaultfd
// Warm page cache unpinned and pinned (taskset -c 0: VMM, vCPUs and handler on one CPU), and
// cold (drop_caches before each run; needs root). Median of --runs runs. Writes
// bench/results-kvm-restore.md. Needs /dev/kvm (root) and cc.
// Usage: node bench/kvm-restore.js [--size 1GiB] [--touched 0.25] [--vcpus 1,4] [--runs 3] [--no-cold]
//        [--only serve-1,lazy]   (some variants only, with the baselines; prints, writes nothing)
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { PageSource, listenForUffd } = require('../dist');
const { encodeWorkingSet } = require('../dist/sources/working-set');
const { parseSize, prng, touchOrder, makeImage, dropCaches, median, shuffle, runPasses } = require('./workload');

const { values } = parseArgs({ options: {
  size: { type: 'string', default: '1GiB' },
  touched: { type: 'string', default: '0.25' },
  vcpus: { type: 'string', default: '1,4' },
  runs: { type: 'string', default: '3' },
  'no-cold': { type: 'boolean', default: false },
  only: { type: 'string' }, // variants to run, comma-separated (c and memory always run: the baselines)
  pass: { type: 'string' }, // internal: one pass, JSON out (the pinned pass runs under taskset)
  dir: { type: 'string' },
} });
const PAGE = 4096;
const SIZE = parseSize(values.size);
const TOUCHED = Number(values.touched);
const RUNS = Number(values.runs);
const VCPUS = values.vcpus.split(',').map(Number);
const ROOT = path.join(__dirname, '..');
const ONLY = values.only ? new Set(['c', 'memory', ...values.only.split(',')]) : null;

// How each variant's memory is served. `serve(i, env)`: serve()'s options for mapping i, as
// lib's firecracker handler passes them ({ removed: 'zero', pageSize }) plus these.
const VARIANTS = [
  { name: 'c', label: 'C handler thread (poll + UFFDIO_COPY, 1 page per fault)', handler: 'c' },
  { name: 'cli', label: '`userfaultfd firecracker-handler` (adaptive read-ahead)', handler: 'cli' },
  { name: 'serve-1', label: 'serve(), 1 page per fault', serve: () => ({ readahead: false }) },
  { name: 'serve-1-mmap', label: 'serve(), 1 page per fault, the file mapped as C maps it', serve: () => ({ readahead: false }), mode: 'mmap' },
  { name: 'lazy', label: 'serve() (adaptive read-ahead)', serve: () => ({}) },
  { name: 'prefetch', label: 'serve({ prefetch }): the recorded set', serve: (i, env) => ({ prefetch: `${env.set}.${i}` }) },
  { name: 'precopy', label: 'full pre-copy, then resume', serve: (i, env) => ({ prefetch: `${env.full}.${i}` }), precopy: true },
  { name: 'memory', label: 'memory already present (floor)', vmm: ['--memory'], warmOnly: true },
];

function setup(dir) {
  const vmm = path.join(dir, 'kvm_peer');
  execFileSync('cc', ['-O2', '-pthread', '-o', vmm, path.join(ROOT, 'test', 'fixtures', 'kvm_peer.c')]);
  const c = path.join(dir, 'fc-handler');
  execFileSync('cc', ['-O2', '-o', c, path.join(__dirname, 'c', 'fc-handler.c')]);
  const image = path.join(dir, 'image.bin');
  makeImage(image, SIZE);
  const order = touchOrder(SIZE / PAGE, TOUCHED);
  const orderFile = path.join(dir, 'order.bin');
  fs.writeFileSync(orderFile, Buffer.from(order.buffer));
  // kvm_peer's two mappings: the first half of the memory file and the rest.
  const sizes = [SIZE / 2, SIZE / 2];
  const full = path.join(dir, 'full.uffdws');
  sizes.forEach((length, i) => fs.writeFileSync(`${full}.${i}`, encodeWorkingSet({ pageSize: PAGE,
    sourceSize: SIZE - i * sizes[0], rangeLength: length, generation: 1,
    runs: [{ first: 0, count: length / PAGE, write: false, age: 0 }] })));
  return { vmm, c, image, orderFile, full, touched: order.length, set: path.join(dir, 'recorded.uffdws'), dir };
}

/** Starts a process; resolves `ready` once its output matches `readyLine`. */
function start(file, args, { stdin = 'ignore', readyLine, readyOn = 'stdout' } = {}) {
  const child = spawn(file, args, { stdio: [stdin, 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  let onReady;
  const ready = new Promise((resolve) => { onReady = resolve; });
  for (const stream of ['stdout', 'stderr']) {
    child[stream].on('data', (d) => {
      out[stream] += d;
      if (readyLine && stream === readyOn && readyLine.test(out[stream])) onReady();
    });
  }
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...out })));
  return { child, ready, done };
}

function vmmResult(r, what) {
  if (r.code !== 0) throw new Error(`kvm_peer (${what}) exited ${r.code ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** What the guest saw, in ms; `faults`: the handler's demand faults. */
function timings(vm, faults) {
  const ms = (cycles) => cycles / vm.tscKhz;
  return { firstTouch: ms(vm.firstTouchCycles), finish: ms(vm.finishCycles), total: (vm.doneNs - vm.handshakeNs) / 1e6, faults };
}

const waitTick = () => new Promise((r) => setImmediate(r));

/** One run: the VMM with `vcpus` vCPUs, its memory served as `variant` says. */
async function runOnce(env, listener, sock, variant, vcpus) {
  const args = ['--list', env.orderFile, '--vcpus', String(vcpus), '--balloon', '0', '--json', '--watchdog', '900'];
  if (variant.vmm) {
    const r = await start(env.vmm, ['-', env.image, ...args, ...variant.vmm]).done;
    return timings(vmmResult(r, variant.name), 0);
  }
  if (variant.handler) {
    const handlerSock = path.join(env.dir, `${variant.name}.sock`);
    const h = variant.handler === 'c'
      ? start(env.c, [handlerSock, env.image], { readyLine: /listening/ })
      : start(process.execPath, [path.join(ROOT, 'bin', 'userfaultfd.js'), 'firecracker-handler', handlerSock, env.image, '--json'],
        { readyLine: /listening on/, readyOn: 'stderr' });
    await h.ready;
    const vm = vmmResult(await start(env.vmm, [handlerSock, env.image, ...args]).done, variant.name);
    const hr = await h.done;
    if (hr.code !== 0) throw new Error(`${variant.name} handler exited ${hr.code ?? hr.signal}: ${hr.stderr}`);
    const lines = hr.stdout.trim().split('\n');
    const faults = variant.handler === 'c' ? JSON.parse(lines.pop()).faults : JSON.parse(lines[0]).faults;
    return timings(vm, faults);
  }
  const v = start(env.vmm, [sock, env.image, ...args, ...(variant.precopy ? ['--wait-go'] : [])], { stdin: 'pipe' });
  const { value } = await listener.next();
  const uffd = value.uffd;
  try {
    const mappings = JSON.parse(value.payload.toString());
    mappings.forEach((m, i) => uffd.serve({ start: BigInt(m.base_host_virt_addr), length: m.size },
      PageSource.file(env.image, { offset: m.offset, mode: variant.mode }), { removed: 'zero', pageSize: m.page_size, ...variant.serve(i, env) }));
    if (variant.precopy) {
      while (uffd.stats().prefetched < SIZE / PAGE) await waitTick();
    }
    v.child.stdin.end('g');
    const vm = vmmResult(await v.done, variant.name);
    return timings(vm, uffd.stats().demandFaults);
  } finally {
    uffd.close(); // writes the recorded sets (the record run)
  }
}

/** One pass: warm or cold; for each vCPU count, medians per variant. */
async function pass(env, cold) {
  const sock = path.join(env.dir, `kvm-${process.pid}.sock`);
  const listener = listenForUffd(sock);
  const loadBefore = os.loadavg()[0];
  try {
    const out = {};
    const variants = VARIANTS.filter((v) => !(cold && v.warmOnly) && (!ONLY || ONLY.has(v.name)));
    const record = { name: 'record', serve: (i) => ({ record: `${env.set}.${i}` }) };
    for (const vcpus of VCPUS) {
      // Records the working set (one page per fault), and warms the cache.
      const rec = await runOnce(env, listener, sock, record, vcpus);
      const results = Object.fromEntries(variants.map((v) => [v.name, []]));
      const rand = prng(7 + vcpus);
      for (let i = 0; i < RUNS; i++) {
        for (const v of shuffle([...variants], rand)) {
          if (cold) dropCaches();
          results[v.name].push(await runOnce(env, listener, sock, v, vcpus));
        }
      }
      out[vcpus] = { record: rec };
      for (const v of variants) {
        const rs = results[v.name];
        out[vcpus][v.name] = Object.fromEntries(['firstTouch', 'finish', 'total', 'faults'].map((k) => [k, median(rs.map((r) => r[k]))]));
        // Each round's runs are close in time: their ratio to the C handler shares the load.
        out[vcpus][v.name].vsC = median(rs.map((r, i) => r.finish / results.c[i].finish));
      }
    }
    return { load: [loadBefore, os.loadavg()[0]], results: out };
  } finally {
    listener.close();
  }
}

const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}x` : 'n/a');

function table(title, p) {
  const lines = [`### ${title}`, '', `Load average (1 min) at the start and end of the pass: ${p.load.map((l) => l.toFixed(2)).join(', ')}.`, ''];
  for (const [vcpus, r] of Object.entries(p.results)) {
    lines.push(`#### ${vcpus} vCPU${vcpus === '1' ? '' : 's'}`, '',
      '| variant | first touch (ms, guest) | finish (ms, guest) | handshake to done (ms, host) | demand faults | finish / C handler (median of rounds) | finish / floor |',
      '|---|---:|---:|---:|---:|---:|---:|');
    for (const v of VARIANTS) {
      const x = r[v.name];
      if (!x) continue;
      lines.push(`| ${v.name}: ${v.label} | ${x.firstTouch.toFixed(3)} | ${x.finish.toFixed(1)} | ${x.total.toFixed(1)} | ${x.faults} | ` +
        `${x.vsC.toFixed(2)}x | ${r.memory ? ratio(x.finish, r.memory.finish) : 'n/a'} |`);
    }
    const perFault = (x) => (1000 * x.finish / x.faults).toFixed(1);
    const notes = [];
    const s1 = r['serve-1'];
    const mapped = r['serve-1-mmap'];
    if (s1) {
      notes.push(`Per guest fault, one page each: serve() / C handler = ${s1.vsC.toFixed(2)}x` +
        `${mapped ? ` (the file mapped, as C maps it: ${mapped.vsC.toFixed(2)}x)` : ''}; ${perFault(s1)}` +
        `${mapped ? ` and ${perFault(mapped)}` : ''} vs ${perFault(r.c)} us per fault` +
        `${r.memory ? `, ${perFault({ finish: r.memory.finish, faults: r.c.faults })} us per page with the memory present` : ''}.`);
    }
    if (r.lazy && r.prefetch) {
      notes.push(`Lazy / prefetch: finish ${ratio(r.lazy.finish, r.prefetch.finish)}, demand faults ` +
        `${ratio(r.lazy.faults, Math.max(1, r.prefetch.faults))} (above 1: prefetch is ahead).`);
    }
    notes.push(`Record run (one page per fault, recording): finish ${r.record.finish.toFixed(1)} ms.`);
    lines.push('', notes.join(' '), '');
  }
  const [one, four] = [p.results[1], p.results[4]];
  if (one && four) {
    const scaling = (name, label) => (one[name] && four[name] ? [`${label} ${ratio(four[name].finish, one[name].finish)}`] : []);
    lines.push(`Scaling, finish at 4 vCPUs / at 1: ${[...scaling('c', 'C handler'), ...scaling('serve-1', 'serve() 1 page per fault'),
      ...scaling('serve-1-mmap', 'the same, the file mapped'), ...scaling('lazy', 'serve() with read-ahead')].join(', ')}.`, '');
  }
  return lines.join('\n');
}

/** Why no KVM guest can run here (printed; the benchmark is then skipped), or null. */
function kvmUnavailable(vmm) {
  if (!fs.existsSync('/dev/kvm')) return 'no /dev/kvm';
  try {
    execFileSync(vmm, ['--probe'], { stdio: 'pipe', timeout: 15000 });
    return null;
  } catch (e) {
    return (e.stderr?.toString().trim() || e.message).split('\n')[0];
  }
}

async function main() {
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-bench-kvm-'));
  const env = setup(dir);
  const why = kvmUnavailable(env.vmm);
  if (why) {
    process.stdout.write(`kvm-restore: skipped: ${why}\n`);
    if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  if (values.pass) {
    process.stdout.write(JSON.stringify(await pass(env, values.pass === 'cold')) + '\n');
    return;
  }
  try {
    const self = [__filename, '--dir', dir, '--size', values.size, '--touched', values.touched, '--runs', values.runs, '--vcpus', values.vcpus,
      ...(values.only ? ['--only', values.only] : [])];
    const sections = runPasses(self, table, { pinned: 'the VMM, its vCPUs and the handler', cold: !values['no-cold'] });
    const md = ['## Restore seen from a KVM guest', '',
      `A ${values.size} memory file; the guest of test/fixtures/kvm_peer.c (32-bit, its vCPUs started right after the ` +
      `handshake, as Firecracker resumes) touches ${env.touched} pages (${(100 * env.touched * PAGE / SIZE).toFixed(1)}%) in runs ` +
      'of 1-32 pages at scattered places, in a fixed shuffled order split between the vCPUs: it reads a dword of each ' +
      'page (a read fault) and writes another. Guest times count TSC cycles from its first instruction; "handshake to done" ' +
      'is the VMM\'s clock from sending the uffd to the last vCPU\'s halt (for precopy it includes the copy). ' +
      `Median of ${RUNS} runs; variants in random order. Host: ${os.cpus().length} CPUs (${os.cpus()[0].model}), ` +
      `Linux ${os.release()}, KVM ${fs.existsSync('/sys/module/kvm_pvm') ? 'PVM (no hardware virtualisation: shadow paging)' : 'hardware'}.`,
      '', ...sections].join('\n');
    process.stdout.write(md + '\n');
    if (!values.only) fs.writeFileSync(path.join(__dirname, 'results-kvm-restore.md'), md + '\n');
  } finally {
    if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
