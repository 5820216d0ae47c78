#!/usr/bin/env bash
# Cross-compiles the linux-<arch> prebuild with Debian's cross toolchain, in a scratch copy so that
# the host's build/ (used by the tests) is left alone. The result lands in prebuilds/linux-<arch>/.
#   apt-get install -y g++-aarch64-linux-gnu    # then: npm run prebuildify:arm64
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
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/binding.gyp" "$root/native" "$root/package.json" "$work/"
ln -s "$root/node_modules" "$work/node_modules"
(
  cd "$work"
  CC="$triple-gcc" CXX="$triple-g++" LINK="$triple-g++" AR="$triple-ar" JOBS="${JOBS:-2}" \
    npx prebuildify --napi --strip --arch "$arch" --strip-bin "$triple-strip"
)
mkdir -p "$root/prebuilds"
rm -rf "$root/prebuilds/linux-$arch"
cp -r "$work/prebuilds/linux-$arch" "$root/prebuilds/"
file "$root/prebuilds/linux-$arch/"*.node 2>/dev/null || ls -l "$root/prebuilds/linux-$arch/"
