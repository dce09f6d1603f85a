#!/usr/bin/env bash
# Assembles the stand-in guest flake in DIR: the fixture flake, the project's
# contract.nix, the host's static busybox, Debian's kernel (unpacked by
# setup-host.sh) and the kernel modules the contract names, with their
# dependencies. Used by the demo and by the boot tests.
# Usage: standin-flake.sh DIR [VERSION]
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
version=${2:-1}
kdir=${MINIGUEST_TEST_KERNEL_DIR:-/var/cache/miniguest-test/kernel}

mkdir -p "$dir"
cp "$root/crates/miniguest/tests/fixtures/standin/flake.nix" "$dir/"
cp "$root/nix/lib/contract.nix" "$dir/"
cp /bin/busybox "$dir/busybox"
cp "$kdir/vmlinuz" "$dir/vmlinuz"
printf '{"version":"%s"}\n' "$version" > "$dir/params.json"

modules=$(readlink -f "$kdir/modules")
kver=$(basename "$modules")
out="$dir/modules/$kver"
mkdir -p "$out"
: > "$out/modules.dep"
wanted=$(nix eval --raw --file "$root/nix/lib/contract.nix" initrdModules \
  --apply 'm: toString (builtins.concatLists (builtins.attrValues m))')
# modules.dep lines list a module's whole dependency closure.
files=$(for m in $wanted; do
  grep -E "/$m\.ko:" "$modules/modules.dep" | tr -d ':' | tr ' ' '\n'
done | sort -u)
for f in $files; do
  mkdir -p "$out/$(dirname "$f")"
  cp "$modules/$f" "$out/$f"
  grep -E "^$f:" "$modules/modules.dep" >> "$out/modules.dep"
done
