#!/usr/bin/env bash
# Runs setup (scripts/setup-host.sh, or the command given) and refuses what
# setup must never do to a user's machine: change /etc/nix/nix.conf, or
# downgrade a package the machine had. Exits non-zero naming the change.
# Usage: checked-setup.sh [COMMAND…]
set -euo pipefail
[ $# -gt 0 ] || set -- bash "$(dirname "$0")/setup-host.sh"

nix_conf_before=$(sha256sum /etc/nix/nix.conf 2>/dev/null || echo absent)
packages_before=$(dpkg-query -W -f '${Package} ${Version}\n' | LC_ALL=C sort)
"$@"
changed=$(LC_ALL=C join <(echo "$packages_before") <(dpkg-query -W -f '${Package} ${Version}\n' | LC_ALL=C sort) |
  awk 'NF == 3 && $2 != $3')
while read -r package before after; do
  [ -n "$package" ] || continue
  if dpkg --compare-versions "$after" lt "$before"; then
    echo "setup downgraded $package from $before to $after" >&2
    exit 1
  fi
done <<< "$changed"
echo "setup: no package downgraded"
nix_conf_after=$(sha256sum /etc/nix/nix.conf 2>/dev/null || echo absent)
if [ "$nix_conf_before" != "$nix_conf_after" ]; then
  echo "setup changed /etc/nix/nix.conf" >&2
  exit 1
fi
echo "setup: /etc/nix/nix.conf left as it was"
