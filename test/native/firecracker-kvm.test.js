// The Firecracker handlers (`userfaultfd firecracker-handler` and examples/firecracker-handler)
// against test/fixtures/kvm_peer.c, a minimal VMM whose guest memory is touched by KVM vCPUs, as
// Firecracker's is: each fault reaches the handler from get_user_pages inside KVM_RUN (a NOWAIT
// attempt first), with the vCPU thread blocked in the kernel; several vCPUs fault the same page;
// the balloon's REMOVE events arrive while vCPUs fault. The VMM checks every checksum its guest
// reports and every page against the memory file. Skipped, saying why, without a usable
// /dev/kvm or a full userfaultfd.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { listenForUffd } = require('../../dist');
const { pattern, runProcess, runChild, startProcess, skipWithReason, requirePrivileged, describeNative, reserveHugePages } = require('../helpers');
const { parseJson, assertExited } = require('../fixtures/firecracker-peer');
const { buildVmm, kvmUnavailable, assertGuestOk, VMM_STATUS } = require('../fixtures/kvm-peer');

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'userfaultfd.js');
const EXAMPLE = path.join(ROOT, 'examples', 'firecracker-handler', 'index.js');
const MEM_SIZE = 16 << 20;
const HUGE = 2 << 20;
const PAGE_4K = 4096; // the guest's own page size (x86), whatever the host's
const DEADLINE = 45000;

describeNative('Firecracker handlers with a KVM guest (vCPU faults)', { features: ['EVENT_REMOVE'] }, function () {
  this.timeout(90000);
  let dir;
  let vmm;
  let memFile;
  let n = 0;
  const sockPath = () => path.join(dir, `k${n++}.sock`);
  const runVmm = (sock, args = [], mem = memFile) => runProcess(vmm, [sock, mem, ...args, '--watchdog', '30'], { timeoutMs: DEADLINE });
  const startCli = (sock, args = [], mem = memFile) => startProcess(process.execPath, [CLI, 'firecracker-handler', sock, mem, '--json', ...args],
    { timeoutMs: DEADLINE });
  const runExample = (sock, mem = memFile) => runChild(EXAMPLE, { isFile: true, args: [sock, mem], timeoutMs: DEADLINE });

  before(async function () {
    requirePrivileged(this, "the VMM's userfaultfd (KVM faults guest memory from the kernel, which a user-mode-only uffd does not see)");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-kvm-'));
    try {
      vmm = buildVmm(dir);
    } catch (e) {
      skipWithReason(this, `cannot build the VMM fixture with cc (${e.message.split('\n')[0]})`);
    }
    const why = await kvmUnavailable(vmm);
    if (why) skipWithReason(this, why);
    memFile = path.join(dir, 'mem.img');
    fs.writeFileSync(memFile, pattern(MEM_SIZE, 5));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Frees `pages` 2 MiB pages for the test (or skips it, saying why); returns the undo. */
  function hugePages(ctx, pages) {
    return reserveHugePages(ctx, pages, { size: 2 << 20 });
  }

  const SHAPES = [
    { name: '4 KiB pages, 1 vCPU', vcpus: 1, unit: PAGE_4K, args: ['--verify-all'] },
    { name: '4 KiB pages, 4 vCPUs', vcpus: 4, unit: PAGE_4K, args: [] },
    { name: '2 MiB hugetlbfs pages, 1 vCPU', vcpus: 1, unit: HUGE, args: ['--huge', '--verify-all'] },
    { name: '2 MiB hugetlbfs pages, 4 vCPUs', vcpus: 4, unit: HUGE, args: ['--huge'] },
  ];
  // The balloon drops 8 pages (1 huge page) the guest never touches, half-way through its run.
  const balloonPages = (unit) => (unit === HUGE ? 1 : 8);

  describe('restore', function () {
    for (const shape of SHAPES) {
      it(`the command restores the guest: ${shape.name}; the balloon's pages read as zeros`, async function () {
        const restore = shape.unit === HUGE ? hugePages(this, MEM_SIZE / HUGE) : () => {};
        try {
          const sock = sockPath();
          const h = startCli(sock);
          const guest = assertGuestOk(await runVmm(sock, ['--vcpus', String(shape.vcpus), ...shape.args]));
          const r = await h.done;
          assert.strictEqual(guest.vcpus, shape.vcpus);
          assert.strictEqual(guest.removed, balloonPages(shape.unit) * shape.unit / PAGE_4K);
          assert.strictEqual(guest.whileRunning, 1, 'the balloon dropped its pages while the vCPUs ran');
          assertExited(r, 0);
          const { vms, summary } = parseJson(r.stdout);
          assert.strictEqual(vms.length, 1);
          const vm = vms[0];
          assert.deepStrictEqual([vm.status, vm.mappings, vm.pageSize, vm.removedPages], ['served', 2, shape.unit, balloonPages(shape.unit)],
            JSON.stringify(vm));
          assert.ok(vm.faults >= 1 && vm.bytes >= guest.touched * PAGE_4K, JSON.stringify(vm));
          assert.deepStrictEqual([summary.vms, summary.failed], [1, 0]);
        } finally {
          restore();
        }
      });

      it(`examples/firecracker-handler restores the guest: ${shape.name}`, async function () {
        const restore = shape.unit === HUGE ? hugePages(this, MEM_SIZE / HUGE) : () => {};
        try {
          const sock = sockPath();
          const h = runExample(sock);
          const guest = assertGuestOk(await runVmm(sock, ['--vcpus', String(shape.vcpus), ...shape.args]));
          const r = await h;
          assert.strictEqual(guest.removed, balloonPages(shape.unit) * shape.unit / PAGE_4K);
          assertExited(r, 0);
          assert.match(r.stdout, /^firecracker-handler: vm pid \d+ served: \d+ faults, \d+ bytes\n$/);
          assert.strictEqual(r.stderr, '');
        } finally {
          restore();
        }
      });
    }

    it('4 vCPUs walking the same pages at once (the second copy of a page meets EEXIST): every vCPU resumes with the right bytes', async function () {
      const sock = sockPath();
      const h = startCli(sock);
      const guest = assertGuestOk(await runVmm(sock, ['--vcpus', '4', '--overlap', '--verify-all']));
      assert.strictEqual(guest.vcpus, 4);
      const r = await h.done;
      assertExited(r, 0);
      assert.strictEqual(parseJson(r.stdout).vms[0].status, 'served');
    });

    it("each vCPU fault reaches the handler once, as a read fault at the page the guest reads, in the guest's order", async function () {
      // One vCPU, a handler in JavaScript answering one page per fault: KVM's first, NOWAIT
      // attempt queues no message, and the guest's write after its read faults no more.
      const order = [];
      for (let p = 3; p < MEM_SIZE / PAGE_4K; p += 37) order.push(p);
      const listFile = path.join(dir, 'order.bin');
      fs.writeFileSync(listFile, Buffer.from(Uint32Array.from(order).buffer));
      const sock = sockPath();
      const listener = listenForUffd(sock, { awaitFd: true });
      const guest = runVmm(sock, ['--list', listFile, '--balloon', '0']);
      const { value } = await listener.next();
      listener.close();
      const { uffd, payload } = value;
      const mappings = JSON.parse(payload.toString());
      const mem = fs.readFileSync(memFile);
      const faults = [];
      uffd.on('pagefault', (f) => {
        const m = mappings.find((x) => f.address >= BigInt(x.base_host_virt_addr) && f.address < BigInt(x.base_host_virt_addr + x.size));
        const at = m.offset + Number(f.address - BigInt(m.base_host_virt_addr));
        const page = at - (at % uffd.pageSize);
        faults.push({ page: page / PAGE_4K, write: f.write });
        uffd.copy(f.address - BigInt(at - page), mem.subarray(page, page + uffd.pageSize));
      });
      try {
        const g = assertGuestOk(await guest);
        assert.strictEqual(g.touched, order.length);
        const pagesPerHost = uffd.pageSize / PAGE_4K;
        assert.deepStrictEqual(faults.map((f) => f.page), order.map((p) => p - (p % pagesPerHost)));
        assert.deepStrictEqual(faults.filter((f) => f.write), []);
      } finally {
        uffd.close();
      }
    });
  });

  it('several VMs at once, served by one handler (--peers 3)', async function () {
    const sock = sockPath();
    const h = startCli(sock, ['--peers', '3']);
    const guests = await Promise.all([
      runVmm(sock, ['--vcpus', '1']),
      runVmm(sock, ['--vcpus', '2', '--kib']),
      runVmm(sock, ['--vcpus', '4', '--overlap']),
    ]);
    guests.forEach((g) => assertGuestOk(g));
    const r = await h.done;
    assertExited(r, 0);
    const { vms, summary } = parseJson(r.stdout);
    assert.deepStrictEqual(vms.map((v) => [v.status, v.removedPages]), [['served', 8], ['served', 8], ['served', 8]]);
    assert.deepStrictEqual([summary.vms, summary.failed, summary.removedPages], [3, 0, 24]);
  });

  it('the record -> prefetch loop with a guest: the second restore prefetches what the first recorded, with fewer demand faults', async function () {
    const set = path.join(dir, 'guest.uffdws');
    const restoreOnce = async () => {
      const sock = sockPath();
      const h = startCli(sock, ['--record', set, '--prefetch', set]);
      assertGuestOk(await runVmm(sock, ['--vcpus', '2']));
      const r = await h.done;
      assertExited(r, 0);
      return parseJson(r.stdout).vms[0];
    };
    const first = await restoreOnce();
    assert.strictEqual(first.status, 'served', JSON.stringify(first));
    assert.strictEqual(first.prefetchedPages, 0, JSON.stringify(first));
    assert.ok(fs.existsSync(set) && fs.existsSync(`${set}.1`), 'a set per mapping');
    const second = await restoreOnce();
    assert.strictEqual(second.status, 'served', JSON.stringify(second));
    assert.ok(second.prefetchedPages > 0, JSON.stringify(second));
    assert.ok(second.demandFaults < first.demandFaults, `demand faults: ${first.demandFaults}, then ${second.demandFaults}`);
  });

  describe('a guest that cannot be served is killed, not left blocked in KVM_RUN', function () {
    it('a page size the command cannot serve: ERR_FC_PAGE_SIZE, the VMM killed while its vCPU waits', async function () {
      const sock = sockPath();
      const h = startCli(sock);
      const g = await runVmm(sock, ['--page-size', String(4 << 20), '--vcpus', '2']);
      const r = await h.done;
      assert.strictEqual(g.timedOut, false);
      assert.strictEqual(g.signal, 'SIGKILL', `VMM: ${g.code} (${VMM_STATUS[g.code]}) ${g.stderr}`);
      assertExited(r, 1);
      assert.match(r.stderr, /vm pid \d+: ERR_FC_PAGE_SIZE: mapping 0: page size 4194304 is not supported .*; killed \(SIGKILL\)/);
      assert.strictEqual(parseJson(r.stdout).vms[0].status, 'killed');
    });

    it('a memory file shorter than the guest memory: ERR_FC_BAD_MAPPING, killed', async function () {
      const short = path.join(dir, 'short.img');
      fs.writeFileSync(short, pattern(MEM_SIZE / 2, 5));
      const sock = sockPath();
      const h = startCli(sock, [], short);
      const g = await runVmm(sock);
      const r = await h.done;
      assert.strictEqual(g.signal, 'SIGKILL', `VMM: ${g.code} (${VMM_STATUS[g.code]}) ${g.stderr}`);
      assertExited(r, 1);
      assert.match(r.stderr, /ERR_FC_BAD_MAPPING: mapping 1: offset \+ size \(16777216\) is past the memory file \(8388608 bytes\); killed \(SIGKILL\)/);
    });

    it('examples/firecracker-handler kills a VM whose page size it cannot serve', async function () {
      const sock = sockPath();
      const h = runExample(sock);
      const g = await runVmm(sock, ['--page-size', String(4 << 20)]);
      const r = await h;
      assert.strictEqual(g.signal, 'SIGKILL', `VMM: ${g.code} (${VMM_STATUS[g.code]}) ${g.stderr}`);
      assertExited(r, 1);
      assert.match(r.stderr, /^firecracker-handler: vm pid \d+ cannot be served \(page size 4194304 is not supported\): killed\n$/);
    });
  });

  describe('a REMOVE storm while vCPUs fault (every ioctl EAGAIN while a REMOVE is unread)', function () {
    for (const [name, args] of [['4 vCPUs, each on its own pages', ['--vcpus', '4']], ['2 vCPUs on the same pages', ['--vcpus', '2', '--overlap']]]) {
      it(`${name}: every page right, every dropped page zero, every REMOVE counted`, async function () {
        const sock = sockPath();
        const h = startCli(sock);
        const guest = assertGuestOk(await runVmm(sock, [...args, '--remove-storm', '--verify-all']));
        const r = await h.done;
        assert.ok(guest.whileRunning >= 20, `only ${guest.whileRunning} of ${guest.madvises} madvise calls came while the vCPUs ran`);
        assertExited(r, 0);
        const vm = parseJson(r.stdout).vms[0];
        assert.strictEqual(vm.status, 'served', JSON.stringify(vm));
        assert.strictEqual(vm.removedPages, guest.removed, 'the handler counted every removed page');
      });
    }
  });
});
