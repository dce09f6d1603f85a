#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine (as root): install
# the tools, build the stand-in guest with real Nix, install it as a
# Miniguest profile, define it in libvirt and boot it, then show its console.
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup-host.sh
cargo build --release --quiet
mg="$root/target/release/miniguest"

bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT

work=$(mktemp -d /tmp/miniguest-demo.XXXXXX)
chmod 755 "$work"   # libvirt's QEMU user reads the guest's boot share
export MINIGUEST_GUESTS_DIR="$work/guests" MINIGUEST_PROFILES_DIR="$work/profiles"
bash scripts/standin-flake.sh "$work/flake"

name=demo
console="$work/console.log"
"$mg" install -n "$name" "path:$work/flake#vm9p"
"$mg" list
echo "--- the command Miniguest prints for libvirt:"
"$mg" create "$name" --console-log "$console"
virsh -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
virsh -c qemu:///system undefine "$name" >/dev/null 2>&1 || true
"$mg" create "$name" --define --console-log "$console"
virsh -c qemu:///system start "$name"
for _ in $(seq 600); do
  grep -q STANDIN-DONE "$console" 2>/dev/null && break
  sleep 0.2
done
echo "--- guest console:"
cat "$console"
virsh -c qemu:///system undefine "$name" >/dev/null
grep -q "STANDIN-CHECK store-writable=no boot-writable=no" "$console"
echo "--- the guest booted from the host's store; its program was read-only."
