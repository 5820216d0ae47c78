#!/usr/bin/env bash
# Builds the addon with AddressSanitizer or ThreadSanitizer (binding.gyp uffd_sanitize) in a
# scratch copy, so build/Release stays the release build, and runs mocha over the given test
# folders with it: node itself is not instrumented, so the sanitizer's runtime (gcc's libasan /
# libtsan) is LD_PRELOADed into every node process of the run, children included.
#   bash scripts/sanitize.sh address|thread [mocha args...]   (default: test/native test/conformance)
#   bash scripts/sanitize.sh address|thread -- command...     (any command, e.g. the churn stress)
# Reports go to $SANITIZE_LOG_DIR (default build-sanitize/<kind>/logs), one file per process;
# the script fails when one holds a report that scripts/sanitize-suppressions/ does not cover.
# docs/development.md says why each option is set.
set -euo pipefail
kind="${1:?usage: sanitize.sh address|thread [mocha args...]}"; shift
case "$kind" in address|thread) ;; *) echo "sanitize.sh: address or thread, not '$kind'" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-sanitize/$kind"
logs="${SANITIZE_LOG_DIR:-$out/logs}"
[ "$kind" = address ] && runtime="$(g++ -print-file-name=libasan.so)"
[ "$kind" = thread ] && runtime="$(g++ -print-file-name=libtsan.so)"
runtime="$(readlink -f "$runtime")"
[ -f "$runtime" ] || { echo "sanitize.sh: no $kind sanitizer runtime for g++ (apt-get install libasan8 libtsan2)" >&2; exit 1; }

# Build (incremental: the scratch copy keeps its objects between runs).
mkdir -p "$out/src"
rm -rf "$out/src/native"; cp -a "$root/native" "$out/src/"  # -a: unchanged files are not rebuilt
cp -a "$root/binding.gyp" "$root/package.json" "$out/src/"
ln -sfn "$root/node_modules" "$out/src/node_modules"
( cd "$out/src" && { [ build/Makefile -nt binding.gyp ] || npx node-gyp configure -- -Duffd_sanitize="$kind" >/dev/null; } &&
  npx node-gyp build -j "${JOBS:-2}" >/dev/null 2>&1 ) || { echo "sanitize.sh: the $kind build failed" >&2; exit 1; }
addon="$out/src/build/Release/userfaultfd.node"
[[ "$(nm -D "$addon")" == *"__${kind:0:1}san_init"* ]] || { echo "sanitize.sh: $addon is not a $kind build" >&2; exit 1; }
(cd "$root" && npm run build:ts --silent)

rm -rf "$logs"; mkdir -p "$logs"
chmod 1777 "$logs"  # children that drop privileges (the handler as nobody) log here too
supp="$root/scripts/sanitize-suppressions"
if [ "$kind" = address ]; then
  # detect_leaks=0: node's own allocations at exit are not this addon's (LeakSanitizer would
  #   report V8's); leaks of ours are tested by test/reliability/leaks.test.js.
  # handle_segv/sigbus=0, allow_user_segv_handler: node and V8 install their own SIGSEGV handler,
  #   and SIGBUS is an answer here (poison, the self-fault guard) that tests expect to kill.
  # detect_odr_violation=0: node's static symbols are seen twice (executable, runtime).
  export ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=1:handle_segv=0:handle_sigbus=0:detect_odr_violation=0:abort_on_error=1:log_path=$logs/asan:suppressions=$supp/asan.supp"
else
  # TSan maps its shadow at fixed addresses: ASLR's high-entropy layouts of Linux 6.x collide
  # with it ("unexpected memory mapping"), so the run is under setarch -R (children inherit it).
  # report_signal_unsafe=0: node's own signal handlers call malloc; not ours. exitcode=0: V8's
  #   reports (suppressed or not) must not change exit codes the tests check; the logs decide.
  export TSAN_OPTIONS="exitcode=0:handle_sigbus=0:handle_segv=0:report_signal_unsafe=0:halt_on_error=0:second_deadlock_stack=1:history_size=4:log_path=$logs/tsan:suppressions=$supp/tsan.supp"
fi
export LD_PRELOAD="$runtime${LD_PRELOAD:+:$LD_PRELOAD}"
export USERFAULTFD_ADDON="$addon"
# The tests read it (test/helpers.js): children get more time; what counts the process's own
# threads or fds, or needs exact tids, skips, saying why.
export USERFAULTFD_SANITIZER="$kind"
[ $# -gt 0 ] || set -- test/native test/conformance
if [ "$1" = -- ]; then shift; else set -- node "$root/node_modules/mocha/bin/mocha.js" "$@"; fi  # not npx: npm crashes under TSan
cd "$root"
wrap=(); [ "$kind" = thread ] && wrap=(setarch "$(uname -m)" -R)
set +e
"${wrap[@]}" "$@"
status=$?
set -e
node "$root/scripts/sanitize-report.js" "$logs" || { [ "$status" = 0 ] && status=1; }
exit "$status"
