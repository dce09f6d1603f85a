#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), starts the
# daemons, runs every test (unit, CLI against real Nix, contract, boot tests
# under libvirt, QEMU, LXC and nspawn), checks that every .nix file parses,
# and stops the daemons. Run as root on Debian 12. Arguments go to each
# `cargo test` (scripts/test.sh --test boot -- NAME runs one boot test).
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
cd "$(dirname "$0")/.."

bash scripts/checked-setup.sh
bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT

for f in $(git ls-files '*.nix'); do
  nix-instantiate --parse "$f" >/dev/null || { echo "does not parse: $f" >&2; exit 1; }
done
echo "nix: every tracked .nix file parses"

# Every test under each Nix the suite proves: Debian 12's 2.8 and Debian
# 13's 2.26 (unpacked by setup-host.sh). MINIGUEST_TEST_NIX=2.8|2.26|both.
case "${MINIGUEST_TEST_NIX:-both}" in
  both) versions="2.8 2.26" ;;
  2.8 | 2.26) versions=$MINIGUEST_TEST_NIX ;;
  *) echo "MINIGUEST_TEST_NIX must be 2.8, 2.26 or both" >&2; exit 2 ;;
esac
# A hung test must fail the run, not stall it: each pass has a limit far
# above what it takes (about five minutes), and the limit's signal reaches
# every process the tests started.
limit=${MINIGUEST_TEST_LIMIT:-1200}
for version in $versions; do
  echo "test: under Nix $version"
  if [ "$version" = 2.26 ]; then
    PATH=/var/cache/miniguest-test/nix-2.26/bin:$PATH MINIGUEST_TEST_NIX=2.26 \
      timeout --kill-after=30 "$limit" cargo test --workspace "$@"
  else
    MINIGUEST_TEST_NIX=2.8 timeout --kill-after=30 "$limit" cargo test --workspace "$@"
  fi || { rc=$?; [ "$rc" -ne 124 ] || echo "test: Nix $version pass exceeded ${limit}s" >&2; exit "$rc"; }
done
