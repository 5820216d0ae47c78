#!/usr/bin/env bash
# Builds the linux-<arch> prebuild (x64 or arm64) with Debian's toolchain for that arch: the
# native g++ when <arch> is this machine's, else the cross one. It builds in a scratch copy, so
# that the host's build/ (used by the tests) is left alone; the result lands in
# prebuilds/linux-<arch>/userfaultfd.node.
#   apt-get install -y g++-aarch64-linux-gnu    # then: npm run prebuildify:arm64
# Usage: bash scripts/prebuild-cross.sh [x64|arm64]   (default arm64)
# CXXFLAGS/LDFLAGS from the environment reach the compiler and linker (node-gyp's Makefile):
#   STRIP=0 CXXFLAGS=-g bash scripts/prebuild-cross.sh arm64          symbols, for gdb-multiarch
#   STRIP=0 CXXFLAGS='-g -fsanitize=address -fno-omit-frame-pointer' LDFLAGS=-fsanitize=address ...
set -euo pipefail
arch="${1:-arm64}"
case "$arch" in
  arm64) triple=aarch64-linux-gnu ;;
  x64) triple=x86_64-linux-gnu ;;
  *) echo "prebuild-cross: unsupported arch '$arch' (known: x64, arm64)" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v "$triple-g++" >/dev/null; then
  echo "prebuild-cross: $triple-g++ not found; install it: apt-get install -y g++-$triple" >&2
  exit 1
fi
# STRIP=0 keeps the symbols (with CXXFLAGS=-g: a build gdb-multiarch can read a core with).
strip=(--strip --strip-bin "$triple-strip"); [ "${STRIP:-1}" = 0 ] && strip=()
# An N-API addon builds against any Node's headers: use the running Node's own, so that nothing
# is downloaded, unless npm's nodedir (npm run passes it as npm_config_nodedir) names others.
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix="$(node -p 'require("path").resolve(process.execPath, "..", "..")')"
  if [ -f "$prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$prefix"; fi
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/binding.gyp" "$root/native" "$root/package.json" "$work/"
ln -s "$root/node_modules" "$work/node_modules"
(
  cd "$work"
  CC="$triple-gcc" CXX="$triple-g++" LINK="$triple-g++" AR="$triple-ar" JOBS="${JOBS:-2}" \
    npx prebuildify --napi "${strip[@]}" --arch "$arch" >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log" >&2; echo "prebuild-cross: the $arch build failed" >&2; exit 1; }
)
mkdir -p "$root/prebuilds"
rm -rf "$root/prebuilds/linux-$arch"
cp -r "$work/prebuilds/linux-$arch" "$root/prebuilds/"
echo "prebuild-cross: $(cd "$root" && ls prebuilds/linux-"$arch"/*.node)"
