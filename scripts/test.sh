#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), starts the
# daemons, runs every test (unit, CLI against real Nix, contract, boot tests
# under libvirt, QEMU, LXC and nspawn), checks that every .nix file parses,
# and stops the daemons. Run as root on Debian 12.
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
cd "$(dirname "$0")/.."

# The user's Nix configuration must come out of setup as it went in.
nix_conf_before=$(sha256sum /etc/nix/nix.conf 2>/dev/null || echo absent)
bash scripts/setup-host.sh
nix_conf_after=$(sha256sum /etc/nix/nix.conf 2>/dev/null || echo absent)
if [ "$nix_conf_before" != "$nix_conf_after" ]; then
  echo "setup-host.sh changed /etc/nix/nix.conf" >&2
  exit 1
fi
echo "setup: /etc/nix/nix.conf left as it was"
bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT

for f in $(git ls-files '*.nix'); do
  nix-instantiate --parse "$f" >/dev/null || { echo "does not parse: $f" >&2; exit 1; }
done
echo "nix: every tracked .nix file parses"

cargo test --workspace
