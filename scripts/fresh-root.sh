#!/usr/bin/env bash
# The README's quick start on a fresh machine: a clean Debian 12 root, with
# none of what setup installs or writes, entered with unshare and
# pivot_root.
# Inside, as a new user would: scripts/demo.sh (setup, services, a guest
# built, installed, defined in libvirt and booted), then scripts/test.sh
# with a boot test of each backend, then the proof that the test command
# refuses a setup that changes /etc/nix/nix.conf or downgrades a package.
#
#   fresh-root.sh plain|image
#
# plain: Debian 12 as debootstrap leaves it, sources in sources.list.
# image: as the project's machines come, sources in sources.list.d and
# qemu-utils from bookworm-backports already installed.
#
# The root's tarball is cached (a week) in /var/cache/miniguest-test/
# fresh-root; each run unpacks a new root and deletes it afterwards. The
# repository, nixpkgs' lib beside it and the Rust toolchain are bound in at
# the paths they have here, so the build outside is reused. Run as root.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = --inside ]; then
  # Pid 1 of a new pid and mount namespace, still seeing the machine's
  # files: mount what the root needs, then enter it.
  root=$2
  # shellcheck source=scripts/root-mounts.sh
  . "$repo/scripts/root-mounts.sh"
  mount_root "$root"
  bind() { # SOURCE [ro]
    mkdir -p "$root$1"
    mount --bind "$1" "$root$1"
    if [ "${2:-}" = ro ]; then mount -o remount,bind,ro "$root$1"; fi
  }
  bind "$repo"
  shared=$repo/../shared
  if [ -d "$shared" ]; then bind "$(cd "$shared" && pwd)" ro; fi
  if [ -n "${MINIGUEST_NIXPKGS_LIB:-}" ]; then bind "$MINIGUEST_NIXPKGS_LIB" ro; fi
  rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
  cargo_home=${CARGO_HOME:-$HOME/.cargo}
  bind "$rustup_home" ro
  bind "$HOME/.cargo/bin" ro
  [ "$cargo_home" = "$HOME/.cargo" ] || bind "$cargo_home"
  enter_root "$root"
  exec /usr/bin/env -i \
    HOME="$HOME" RUSTUP_HOME="$rustup_home" CARGO_HOME="$cargo_home" \
    PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
    MINIGUEST_REQUIRE_NIX=1 MINIGUEST_REQUIRE_E2E=1 \
    MINIGUEST_NIXPKGS_LIB="${MINIGUEST_NIXPKGS_LIB:-}" \
    MINIGUEST_FRESH_VARIANT="$FRESH_VARIANT" \
    bash "$repo/scripts/fresh-root.sh" --chrooted
fi

if [ "${1:-}" = --chrooted ]; then
  cd "$repo"
  [ -n "${MINIGUEST_NIXPKGS_LIB:-}" ] || unset MINIGUEST_NIXPKGS_LIB
  echo "fresh-root: README command 1, scripts/demo.sh"
  bash scripts/demo.sh
  echo "fresh-root: README command 2, scripts/test.sh, one boot test a backend"
  bash scripts/test.sh --test boot -- --exact \
    libvirt::libvirt_boots_a_writable_virtiofs_share \
    qemu::qemu_virtiofs_run_and_printed_command \
    lxc::lxc_container_with_mapped_root_boots_and_cannot_write_the_store \
    nspawn::nspawn_define_writes_settings_systemd_nspawn_boots \
    systemd::lxc_runs_real_systemd_to_running
  echo "fresh-root: the test command refuses a setup that changes /etc/nix/nix.conf"
  if out=$(bash scripts/checked-setup.sh sh -c 'mkdir -p /etc/nix && echo "# changed by setup" >> /etc/nix/nix.conf' 2>&1); then
    echo "fresh-root: a setup that changed /etc/nix/nix.conf was accepted" >&2
    exit 1
  fi
  grep -q "changed /etc/nix/nix.conf" <<<"$out" || { echo "$out" >&2; exit 1; }
  echo "fresh-root: refused: $(tail -n 1 <<<"$out")"
  if [ "$MINIGUEST_FRESH_VARIANT" = image ]; then
    echo "fresh-root: the test command refuses a setup that downgrades a package"
    if out=$(bash scripts/checked-setup.sh apt-get install -y -q --allow-downgrades qemu-utils/bookworm 2>&1); then
      echo "fresh-root: a setup that downgraded QEMU was accepted" >&2
      exit 1
    fi
    grep -q "downgraded qemu-" <<<"$out" || { echo "$out" >&2; exit 1; }
    echo "fresh-root: refused: $(tail -n 1 <<<"$out")"
  fi
  echo "fresh-root: passed"
  exit 0
fi

variant=${1:-}
case "$variant" in
  plain | image) ;;
  *) echo "usage: $0 plain|image" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "fresh-root: run as root" >&2; exit 2; }
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
fi

# What the machines' image has beside minbase that the quick start may
# lean on: git, a C compiler (for crates that build C), procps.
options=(--variant=minbase --include=ca-certificates,git,procps,gcc,libc6-dev)
if [ "$variant" = image ]; then
  options+=(
    --customize-hook='echo "deb http://deb.debian.org/debian bookworm-backports main" > "$1/etc/apt/sources.list.d/backports.list"'
    --customize-hook='chroot "$1" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-utils"'
    --customize-hook='rm "$1/etc/apt/sources.list.d/backports.list" "$1/etc/apt/sources.list"'
    --customize-hook='printf "%s\n" "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm bookworm-updates" "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" "Types: deb" "URIs: http://deb.debian.org/debian-security" "Suites: bookworm-security" "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$1/etc/apt/sources.list.d/debian.sources"'
  )
fi
cache=/var/cache/miniguest-test/fresh-root
mkdir -p "$cache"
find "$cache" -name '*.tar' -mtime +7 -delete
key=$(printf '%s\n' "${options[@]}" | sha256sum | cut -c1-16)
tarball=$cache/$variant-$key.tar
if [ ! -f "$tarball" ]; then
  echo "fresh-root: building the $variant root"
  rm -rf "$cache/$variant-"*
  # mmdebstrap picks its output's format from the name's ending.
  mmdebstrap --quiet "${options[@]}" bookworm "$cache/$variant-partial.tar"
  mv "$cache/$variant-partial.tar" "$tarball"
fi

work=$(mktemp -d /var/tmp/miniguest-fresh-root.XXXXXX)
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$tarball"
# What reaches the registries from here reaches them from the root too.
cp /etc/resolv.conf "$root/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
echo "fresh-root: $variant root at $root"
start=$(date +%s)
FRESH_VARIANT=$variant unshare --mount --pid --fork --kill-child --propagation private \
  bash "$repo/scripts/fresh-root.sh" --inside "$root"
echo "fresh-root: $variant passed in $(($(date +%s) - start)) s"
