#!/usr/bin/env bash
# Cross-compiles the linux-<arch> prebuild with Debian's cross toolchain, in a scratch copy so that
# the host's build/ (used by the tests) is left alone. The result lands in prebuilds/linux-<arch>/.
#   apt-get install -y g++-aarch64-linux-gnu    # then: npm run prebuildify:arm64
# CXXFLAGS/LDFLAGS from the environment reach the compiler and linker (node-gyp's Makefile):
#   STRIP=0 CXXFLAGS=-g bash scripts/prebuild-cross.sh arm64          symbols, for gdb-multiarch
#   STRIP=0 CXXFLAGS='-g -fsanitize=address -fno-omit-frame-pointer' LDFLAGS=-fsanitize=address ...
set -euo pipefail
arch="${1:-arm64}"
case "$arch" in
  arm64) triple=aarch64-linux-gnu ;;
  *) echo "prebuild-cross: unsupported arch '$arch' (known: arm64)" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v "$triple-g++" >/dev/null; then
  echo "prebuild-cross: $triple-g++ not found (apt-get install -y g++-$triple)" >&2
  exit 1
fi
# STRIP=0 keeps the symbols (with CXXFLAGS=-g: a build gdb-multiarch can read a core with).
strip=(--strip --strip-bin "$triple-strip"); [ "${STRIP:-1}" = 0 ] && strip=()
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/binding.gyp" "$root/native" "$root/package.json" "$work/"
ln -s "$root/node_modules" "$work/node_modules"
(
  cd "$work"
  CC="$triple-gcc" CXX="$triple-g++" LINK="$triple-g++" AR="$triple-ar" JOBS="${JOBS:-2}" \
    npx prebuildify --napi "${strip[@]}" --arch "$arch"
)
mkdir -p "$root/prebuilds"
rm -rf "$root/prebuilds/linux-$arch"
cp -r "$work/prebuilds/linux-$arch" "$root/prebuilds/"
file "$root/prebuilds/linux-$arch/"*.node 2>/dev/null || ls -l "$root/prebuilds/linux-$arch/"
