#!/bin/sh
# Runs in the arm64 guest of scripts/test-arm64.sh (cwd: the checkout, over 9p): says what it
# runs on, checks that the addon loaded is the shipped prebuild (its sha256 as built on the
# host), then runs mocha with the arguments in ARGS_FILE (one per line). The last line:
# "tests: N passed, N failed, N skipped".
#   sh scripts/arm64-guest.sh PREBUILD_SHA256 ARGS_FILE
sha="$1"; args_file="$2"; shift 2
while IFS= read -r a; do set -- "$@" "$a"; done < "$args_file"
echo "=== guest up $(cut -d" " -f1 /proc/uptime) s: $(uname -srm); $(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' '); $(grep Hugepagesize /proc/meminfo | tr -s ' ')"
echo "=== node $(node -p 'process.version + " " + process.arch'); nproc $(nproc); $(grep MemTotal /proc/meminfo | tr -s ' ')"
echo "=== UFFD_TEST_TIME_SCALE=$UFFD_TEST_TIME_SCALE UFFD_TEST_C_FIXTURES=$UFFD_TEST_C_FIXTURES UFFD_TEST_BACKENDS=${UFFD_TEST_BACKENDS:-native,simulator} (the conformance backends run here)"
node bin/userfaultfd.js doctor | sed -n '3,8p'
addon=$(node -p "require('node-gyp-build').path('.')")
got=$(sha256sum "$addon" | cut -d' ' -f1)
echo "=== addon: $addon ($got)"
if [ "$addon" != "$PWD/prebuilds/linux-arm64/userfaultfd.node" ] || [ "$got" != "$sha" ]; then
  echo "the addon loaded is not the shipped prebuild (prebuilds/linux-arm64/userfaultfd.node, $sha)"
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
# The guest is the run's own: have its kernel log every unhandled signal (the pc, the ESR, the
# registers) for the crash report after mocha; Debian's default (0) logs none.
echo 1 > /proc/sys/debug/exception-trace 2>/dev/null || true
log=/tmp/mocha.log
t0=$(cut -d' ' -f1 /proc/uptime)
(node node_modules/mocha/bin/mocha.js "$@"; echo "=== mocha exit $?") 2>&1 | tee "$log"
echo "=== mocha: $(cut -d' ' -f1 /proc/uptime | awk -v t0="$t0" '{ printf "%.0f", $1 - t0 }') s in the guest"
count() { grep -Eo "^ +[0-9]+ $1" "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
if grep -Eq "^ +[0-9]+ passing" "$log"; then
  passed=$(count passing) failed=$(count failing) skipped=$(count pending)
else
  # mocha died before its summary (a crash of the process itself): what it had passed, and one failure.
  echo "=== mocha never printed its summary: $(grep '^=== mocha exit' "$log")"
  passed=$(grep -c '✔' "$log" || true) failed=1 skipped=0
fi
# What the kernel logged about crashed processes (arm64 prints the ESR and registers of an
# unhandled signal: a SIGILL with ESR class 0x1c is a failed pointer authentication).
if dmesg | grep -Eq 'unhandled|fatal signal|BUG:|WARNING:|Oops'; then
  echo "=== the guest kernel's log of crashes:"
  dmesg | grep -E -A10 'unhandled|fatal signal|BUG:|WARNING:|Oops' | tail -120
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
