#!/usr/bin/env bash
# Runs the test suite on a real arm64 Linux kernel: Debian trixie's 6.12, 4 KiB or 16 KiB pages,
# booted under qemu-system-aarch64 (TCG) on any host, with trixie's Node (arm64) in the guest.
# The addon loaded there is the shipped linux-arm64 prebuild (scripts/prebuild-cross.sh, the
# release path's cross build); the C fixtures are cross-compiled here, as the guest has no
# compiler. Deadlines are scaled by UFFD_TEST_TIME_SCALE (emulation is slow), never the checks.
#
#   npm run test:arm64                       KERNEL=4k, the CI subset (see SUITE)
#   KERNEL=16k SUITE=full npm run test:arm64
#   KERNEL=4k SPEC='test/native/kernel.test.js' npm run test:arm64
#
# Env:
#   KERNEL   4k | 16k (default 4k): Debian's linux-image-*-arm64 or -arm64-16k
#   SUITE    ci (default): what CI runs on each kernel: test/conformance and test/native but for
#              the four slowest files, made of child processes (docs/platforms.md says why)
#            full: test/conformance test/native test/examples.test.js test/smoke.test.js
#            all: full + test/reliability test/doctor test/simulator (every test/**/*.test.js
#              but lint, types and package, which test the host's toolchain, not the kernel)
#   BACKENDS UFFD_TEST_BACKENDS in the guest: the conformance backends run (default: native for
#              SUITE=ci, as the simulator is TypeScript the host's run covers; else native,simulator)
#   SPEC     mocha's file/folder arguments, instead of SUITE
#   MOCHA_ARGS  extra mocha arguments, split on spaces (e.g. "--slow 2")
#   GREP     mocha's -g pattern (one argument, spaces and all)
#   TIME_SCALE  UFFD_TEST_TIME_SCALE in the guest (default 10)
#   W        state folder, reused between runs (default /var/tmp/userfaultfd-arm64): downloads,
#            the guest's root file system, the shared copy of the checkout
#   SMP (2), MEM (2048 MiB), QEMU_TIMEOUT (seconds, default 2400), NICE (10)
#   QEMU_CPU qemu's -cpu (default neoverse-n1: 4k and 16k granules; qemu 7.2's `max` crashes Node
#              itself now and then, addon or not: docs/platforms.md, "Emulation faults")
#   PHASE    all (default) | prepare (everything up to the boot: downloads, builds, the guest's
#              copy in $W/share-$KERNEL) | boot (only the boot, of what prepare left): .ci/arm64
#              prepares each kernel in turn, then boots them side by side
# Output: mocha's, from the guest; the last line is "tests: N passed, N failed, N skipped", as
# .ci/unprivileged prints it. Exit status: mocha's in the guest (255: the guest never reported).
# Host changes (root, Debian): apt-get install qemu-system-arm gcc-aarch64-linux-gnu
# g++-aarch64-linux-gnu cpio xz-utils if missing. Trixie's arm64 packages come through a private
# apt configuration in $W and are unpacked with dpkg-deb -x: no foreign architecture, no sysctl.
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
KERNEL="${KERNEL:-4k}"; SUITE="${SUITE:-ci}"; SPEC="${SPEC:-}"; MOCHA_ARGS="${MOCHA_ARGS:-}"; GREP="${GREP:-}"
TIME_SCALE="${TIME_SCALE:-10}"; W="${W:-/var/tmp/userfaultfd-arm64}"; PHASE="${PHASE:-all}"
S="share-$KERNEL" # what the guest sees over 9p: its copy of the checkout, the fixtures, its output
QEMU_CPU="${QEMU_CPU:-neoverse-n1}"; SMP="${SMP:-2}"; MEM="${MEM:-2048}"; QEMU_TIMEOUT="${QEMU_TIMEOUT:-2400}"; NICE="${NICE:-10}"
case "$KERNEL" in 4k) FLAVOUR=arm64 ;; 16k) FLAVOUR=arm64-16k ;; *) echo "KERNEL=4k|16k, not '$KERNEL'" >&2; exit 2 ;; esac
if [ -z "$SPEC" ]; then
  case "$SUITE" in
    ci) SPEC="test/conformance test/native test/smoke.test.js
          --ignore test/conformance/lifetime.test.js --ignore test/native/firecracker-handler-cli.test.js
          --ignore test/native/migrate.test.js --ignore test/native/postcopy.test.js
          --ignore test/native/serve-demo.test.js"
        BACKENDS="${BACKENDS:-native}" ;;
    full) SPEC="test/conformance test/native test/examples.test.js test/smoke.test.js" ;;
    all) SPEC="test/conformance test/native test/reliability test/doctor test/simulator test/examples.test.js test/smoke.test.js" ;;
    *) echo "SUITE=ci|full|all, not '$SUITE'" >&2; exit 2 ;;
  esac
fi
BACKENDS="${BACKENDS:-native,simulator}"
T0=$(date +%s)
say() { echo "[test-arm64 $KERNEL +$(( $(date +%s) - T0 ))s] $*" >&2; }
case "$PHASE" in all | prepare | boot) ;; *) echo "PHASE=all|prepare|boot, not '$PHASE'" >&2; exit 2 ;; esac
mkdir -p "$W"; cd "$W"
if [ "$PHASE" != boot ]; then

# 1. Host tools (the host's own Debian packages).
need=()
for p in qemu-system-arm gcc-aarch64-linux-gnu g++-aarch64-linux-gnu cpio xz-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. A private apt configuration for trixie (its arm64 lists), on the mirror this host uses.
mkdir -p apt/lists/partial debs/partial kdebs
MIRROR=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
  grep -E '^\s*(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | tr -d ' ' | head -1 || true)
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
echo "deb ${MIRROR%/} trixie main" > apt/sources.list
: > apt/status
LISTS=(-o Dir::Etc::sourcelist="$W/apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
  -o Dir::State::Lists="$W/apt/lists" -o APT::Get::List-Cleanup=0 -o Dir::State::status="$W/apt/status")
ARM64=("${LISTS[@]}" -o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::Cache::archives="$W/debs" -o Debug::NoLocking=1 -o APT::Install-Recommends=0)
if [ ! -e apt/.updated ] || [ -n "$(find apt/.updated -mtime +1)" ]; then
  say "apt update (trixie arm64, private)"
  apt-get "${ARM64[@]}" update -qq
  touch apt/.updated
fi

# 3. The kernel: the newest linux-image-6.*-<flavour>-unsigned, unpacked into k$KERNEL/.
if [ ! -e "k$KERNEL/.done" ]; then
  pkg=$(apt-cache "${ARM64[@]}" pkgnames linux-image- | grep -E "^linux-image-[0-9.]+\+deb[0-9]+-$FLAVOUR-unsigned\$" | sort -V | tail -1)
  [ -n "$pkg" ] || { echo "no linux-image-*-$FLAVOUR-unsigned in trixie" >&2; exit 1; }
  say "download $pkg"
  (cd kdebs && apt-get "${ARM64[@]}" download "$pkg" 2>&1 | grep -v 'Download is performed unsandboxed' || true)
  rm -rf "k$KERNEL"; mkdir -p "k$KERNEL"
  dpkg-deb -x kdebs/"${pkg}"_*_arm64.deb "k$KERNEL"
  grep -q '^CONFIG_USERFAULTFD=y' "k$KERNEL"/boot/config-* || { echo "$pkg: CONFIG_USERFAULTFD is not y" >&2; exit 1; }
  touch "k$KERNEL/.done"
fi

# 4. The guest's userland: Node and what the tests run (bash, util-linux's setpriv, unshare and
#    prlimit, losetup, sysctl, setfacl), with their dependencies, from trixie arm64.
GUEST_PACKAGES="nodejs busybox-static bash util-linux mount procps acl"
if [ "$(cat rootfs/.done 2>/dev/null)" != "$GUEST_PACKAGES" ]; then
  say "download $GUEST_PACKAGES (arm64) with their dependencies"
  rm -f debs/*.deb
  apt-get "${ARM64[@]}" -y -qq install --download-only $GUEST_PACKAGES >/dev/null
  rm -rf rootfs; mkdir rootfs
  for f in debs/*.deb; do dpkg-deb -x "$f" rootfs; done
  rm -rf rootfs/usr/share/doc rootfs/usr/share/man rootfs/usr/share/locale rootfs/usr/lib/aarch64-linux-gnu/gconv
  for d in bin sbin lib; do [ -L "rootfs/$d" ] || { cp -a "rootfs/$d/." "rootfs/usr/$d/" 2>/dev/null || true; rm -rf "rootfs/$d"; ln -s "usr/$d" "rootfs/$d"; }; done
  mkdir -p rootfs/etc rootfs/usr/sbin
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > rootfs/etc/passwd
  printf 'root:x:0:\nnogroup:x:65534:\n' > rootfs/etc/group
  printf '127.0.0.1 localhost\n::1 localhost\n' > rootfs/etc/hosts
  echo "$GUEST_PACKAGES" > rootfs/.done
fi
cat > rootfs/init <<'EOF'
#!/bin/busybox sh
mkdir -p /usr/local/bin; /bin/busybox --install -s /usr/local/bin 2>/dev/null
export PATH=/usr/bin:/usr/sbin:/usr/local/bin HOME=/root TMPDIR=/tmp
mkdir -p /proc /sys /dev /tmp /mnt/host /root /run
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o size=1g tmpfs /tmp; ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname arm64-guest; ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
for m in netfs 9pnet 9pnet_virtio 9p; do insmod /kmods/$m.ko || echo "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose host0 /mnt/host || echo "9p mount failed"
cd /mnt/host/repo
(sh /mnt/host/guest-cmd.sh; echo $? > /mnt/host/guest-rc) 2>&1 | tee /mnt/host/guest-out.log
sync; poweroff -f
EOF
chmod +x rootfs/init
(cd rootfs && find . | cpio -o -H newc --quiet) > base.cpio

# 5. The 9p modules of this kernel (Debian builds them as modules), in a second cpio.
rm -rf "mods-$KERNEL"; mkdir -p "mods-$KERNEL/kmods"
for m in fs/netfs/netfs net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p; do
  xz -dc "k$KERNEL"/usr/lib/modules/*/kernel/$m.ko.xz > "mods-$KERNEL/kmods/$(basename $m).ko"
done
(cd "mods-$KERNEL" && find . | cpio -o -H newc --quiet) > "mods-$KERNEL.cpio"
cat base.cpio "mods-$KERNEL.cpio" > "initrd-$KERNEL"

# 6. What the guest runs: the checkout as it is (dist/ built), the shipped arm64 prebuild, and
#    the C fixtures cross-compiled. The guest's copy has no build/ (node-gyp-build would load the
#    host's build/Release before the prebuild) and no .git.
PREBUILD="$ROOT/prebuilds/linux-arm64/userfaultfd.node"
# The cross build is redone when its inputs changed (or the prebuild did); a fresh machine always builds.
inputs=$(cd "$ROOT" && find binding.gyp package.json native -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
# (no prebuild yet on a fresh checkout: an empty hash, not a failed pipeline under set -e)
stamp="$inputs $({ sha256sum "$PREBUILD" 2>/dev/null || true; } | cut -d' ' -f1)"
(cd "$ROOT" && npm run build:ts --silent) > build.log 2>&1 || { tail -30 build.log >&2; exit 1; }
if [ "$(cat prebuild.stamp 2>/dev/null)" != "$stamp" ]; then
  say "the linux-arm64 prebuild (scripts/prebuild-cross.sh)"
  (cd "$ROOT" && JOBS="$SMP" bash scripts/prebuild-cross.sh arm64) >> build.log 2>&1 || { tail -30 build.log >&2; exit 1; }
  echo "$inputs $(sha256sum "$PREBUILD" | cut -d' ' -f1)" > prebuild.stamp
fi
file "$PREBUILD" | grep -q 'ARM aarch64' || { echo "$PREBUILD is not an arm64 ELF" >&2; exit 1; }
rm -rf "$S"; mkdir -p "$S/repo" "$S/c-fixtures"
(cd "$ROOT" && node test/fixtures/c-fixtures.js "$W/$S/c-fixtures" aarch64-linux-gnu-gcc) >> build.log 2>&1 ||
  { tail -30 build.log >&2; exit 1; }
# A copy, so that editing the checkout during a run does not change what the guest runs;
# node_modules as hard links where it can (the same file system), as nothing edits it in place.
for f in "$ROOT"/* "$ROOT"/.mocharc.js; do
  case "$(basename "$f")" in
    build) ;;
    node_modules) cp -al "$f" "$S/repo/" 2>/dev/null || cp -a "$f" "$S/repo/" ;;
    *) cp -a "$f" "$S/repo/" ;;
  esac
done
sha=$(sha256sum "$PREBUILD" | cut -d' ' -f1)
# mocha's arguments, one per line (GREP may hold spaces and shell characters).
{ printf '%s\n' $SPEC $MOCHA_ARGS; [ -z "$GREP" ] || printf -- '-g\n%s\n' "$GREP"; } > "$S/mocha-args"
# UFFD_TEST_HOST_SETTINGS=1: the sysctls and huge page pools the tests change are the guest's own.
cat > "$S/guest-cmd.sh" <<EOF
export UFFD_TEST_TIME_SCALE=$TIME_SCALE UFFD_TEST_C_FIXTURES=/mnt/host/c-fixtures UFFD_TEST_HOST_SETTINGS=1 UFFD_TEST_BACKENDS=$BACKENDS
exec sh scripts/arm64-guest.sh $sha /mnt/host/mocha-args
EOF
echo 255 > "$S/guest-rc"
fi
if [ "$PHASE" = prepare ]; then say "prepared $W/$S"; exit 0; fi
[ -e "$S/guest-cmd.sh" ] || { echo "PHASE=boot: nothing prepared in $W/$S" >&2; exit 2; }
echo 255 > "$S/guest-rc"
VMLINUZ=$(ls "$W/k$KERNEL"/boot/vmlinuz-*)

# 7. Boot (TCG).
say "boot $(basename "$VMLINUZ") ($KERNEL pages), cpu=$QEMU_CPU smp=$SMP mem=${MEM}M; running: $(echo $SPEC)"
# CPU seconds used by this shell's children so far (user + system; `times` must run in this
# shell, not in a $(...) subshell): qemu's, taken as a difference.
child_cpu() { tail -1 "$W/times-$KERNEL" | tr 'ms' '  ' | awk '{ printf "%.0f", $1 * 60 + $2 + $3 * 60 + $4 }'; }
times > "$W/times-$KERNEL"; cpu0=$(child_cpu); tb=$(date +%s)
nice -n "$NICE" timeout "$QEMU_TIMEOUT" qemu-system-aarch64 -M virt -cpu "$QEMU_CPU" -smp "$SMP" -m "$MEM" \
  -nographic -no-reboot -kernel "$VMLINUZ" -initrd "initrd-$KERNEL" \
  -append 'console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=1' \
  -virtfs local,path="$W/$S",mount_tag=host0,security_model=none </dev/null 2>&1 |
  stdbuf -oL tr -d '\r' | tee "console-$KERNEL.log" || true
rc=$(cat "$S/guest-rc")
times > "$W/times-$KERNEL"
say "qemu ${KERNEL}: $(( $(date +%s) - tb ))s wall, $(( $(child_cpu) - cpu0 ))s CPU, load $(cut -d' ' -f1-3 /proc/loadavg); guest exit $rc; total $(( $(date +%s) - T0 ))s"
grep -q '^tests: ' "$S/guest-out.log" 2>/dev/null || echo "tests: 0 passed, 1 failed, 0 skipped (the $KERNEL guest did not report)"
exit "$rc"
