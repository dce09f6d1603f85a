#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), starts the
# daemons, runs every test (unit, CLI against real Nix, contract, boot tests
# under libvirt, QEMU, LXC and nspawn), checks that every .nix file parses,
# and stops the daemons. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT

for f in $(git ls-files '*.nix'); do
  nix-instantiate --parse "$f" >/dev/null || { echo "does not parse: $f" >&2; exit 1; }
done
echo "nix: every tracked .nix file parses"

cargo test --workspace
