#!/usr/bin/env bash
# `npm run pack:release`: the tarball the README promises, with prebuilds for linux-x64 and
# linux-arm64 (glibc) inside, so that installing it needs no compiler. Builds both prebuilds
# from this checkout's native/ (scripts/prebuild-cross.sh: Debian's g++ for each arch; install
# g++-aarch64-linux-gnu on x64, g++-x86-64-linux-gnu on arm64), the TypeScript, then packs and
# checks that both prebuilds are in the tarball. Plain `npm pack` packs whatever is in
# prebuilds/ and warns when one is missing (scripts/check-prebuilds.js).
# Usage: bash scripts/pack-release.sh [destination directory]   (default: this checkout)
# Output: the build's progress on stderr; the tarball's path, alone, as the last line of stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$(cd "${1:-$root}" && pwd)"
cd "$root"
for arch in x64 arm64; do
  bash scripts/prebuild-cross.sh "$arch" >&2
done
npm run --silent build:ts >&2
name="$(npm pack --silent --pack-destination "$dest" | tail -1)"
tarball="$dest/$name"
listing="$(tar -tzf "$tarball")"
for arch in x64 arm64; do
  if ! grep -qx "package/prebuilds/linux-$arch/userfaultfd.node" <<<"$listing"; then
    echo "pack-release: $tarball has no prebuilds/linux-$arch/userfaultfd.node" >&2
    exit 1
  fi
done
echo "pack-release: $tarball holds prebuilds/linux-x64 and prebuilds/linux-arm64" >&2
echo "$tarball"
