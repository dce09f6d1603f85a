#!/usr/bin/env bash
# Installs and configures everything the test suite needs on a fresh Debian 12
# machine: Nix (offline, single-user), QEMU, libvirt, LXC, systemd-nspawn and
# the pieces of the stand-in guest (Debian kernel, busybox). Idempotent.
# It writes only what is absent or its own: Nix's settings go to a private
# configuration directory, never to /etc/nix/nix.conf.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends)
# shellcheck source=scripts/apt-private.sh
. "$(dirname "$0")/apt-private.sh"

# QEMU's packages must come from one release. Where some are installed
# already (the machine image may carry qemu-utils from bookworm-backports),
# the rest come from that same release, so nothing the user has is
# downgraded; otherwise from bookworm.
qemu_pkgs=(qemu-system-x86 qemu-utils qemu-block-extra)
qemu_suite=bookworm
for p in "${qemu_pkgs[@]}" qemu-system-common qemu-system-data; do
  v=$(dpkg-query -W -f '${Status} ${Version}' "$p" 2>/dev/null || true)
  case "$v" in "install ok installed "*~bpo12*) qemu_suite=bookworm-backports ;; esac
done
pkgs=(nix-bin git jq bc cpio gzip kmod busybox-static
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  virtinst pkg-config libxml2-utils lxc uidmap systemd-container
  binutils patchelf)
# Installed, not merely known (a removed package's configuration keeps it
# in dpkg's database).
installed() {
  for p; do
    [ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1
  done
}
if ! installed "${qemu_pkgs[@]}" "${pkgs[@]}"; then
  apt-get update -q
  if [ "$qemu_suite" = bookworm ]; then
    apt-get install "${apt_opts[@]}" "${qemu_pkgs[@]}"
  else
    # That release is not among the machine's sources: added for this
    # install only, with lists of its own. It is also the target release,
    # so the packages' own dependencies (qemu-system-common, -data,
    # seabios) come from it too; naming the suite per package would pick
    # it for the named packages alone.
    private_apt "$qemu_suite" install "${apt_opts[@]}" -t "$qemu_suite" "${qemu_pkgs[@]}"
  fi
  apt-get install "${apt_opts[@]}" "${pkgs[@]}"
fi
echo "setup-host: QEMU $(dpkg-query -W -f '${Version}' qemu-system-x86) (from $qemu_suite)"

# Nix 2.26 beside the system's 2.8, and virtiofsd where QEMU has none.
bash "$(dirname "$0")/trixie-tools.sh"

# Nix: offline, flakes on, no sandbox (builders see the host's /bin). The
# configuration is private to the tests and the demo (they export
# NIX_CONF_DIR, see scripts/nix-env.sh): a user's /etc/nix/nix.conf, with
# its substituters and trusted users, is never touched.
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
mkdir -p "$NIX_CONF_DIR"
registry=$NIX_CONF_DIR/empty-registry.json
[ -f "$registry" ] || echo '{"flakes":[],"version":2}' > "$registry"
cat > "$NIX_CONF_DIR/nix.conf.new" <<CONF
experimental-features = nix-command flakes
substituters =
flake-registry = $registry
sandbox = false
# Single-user install: builds run as the invoking user.
build-users-group =
CONF
mv "$NIX_CONF_DIR/nix.conf.new" "$NIX_CONF_DIR/nix.conf"

# libvirt's QEMU driver runs guests as this user. It must be able to open
# /dev/kvm: otherwise libvirtd finds its cached QEMU capabilities outdated
# at every look-up and re-probes, and each define takes half a minute.
# Membership is checked, not assumed: `useradd -G kvm` is skipped when the
# kvm group appeared after the user.
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g libvirt-qemu -M -s /usr/sbin/nologin libvirt-qemu
if [ -e /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd -r kvm
  id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm || usermod -aG kvm libvirt-qemu
  # Where no udev rule gave the device to group kvm (a container's /dev),
  # do what Debian's rule does; the node is recreated at boot.
  if [ "$(stat -c %G /dev/kvm)" != kvm ]; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
fi

# LXC maps container root to this range.
grep -q '^root:' /etc/subuid 2>/dev/null || echo 'root:100000:65536' >> /etc/subuid
grep -q '^root:' /etc/subgid 2>/dev/null || echo 'root:100000:65536' >> /etc/subgid

# The stand-in guest's kernel: unpacked from Debian's package rather than
# installed, so the host's /boot is left alone.
kdir=/var/cache/miniguest-test/kernel
if [ ! -f "$kdir/vmlinuz" ]; then
  tmp=$(mktemp -d)
  apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  (cd "$tmp" && { apt-get download "$pkg" || { apt-get update -q && apt-get download "$pkg"; }; })
  mkdir -p "$kdir.new"
  dpkg-deb -x "$tmp"/*.deb "$kdir.new/root"
  cp "$kdir.new"/root/boot/vmlinuz-* "$kdir.new/vmlinuz"
  # The package leaves modules.dep to its postinst; the stand-in's initrd
  # builder reads it to load modules in dependency order.
  kver=$(ls "$kdir.new/root/lib/modules")
  depmod -b "$kdir.new/root" "$kver"
  ln -s "root/lib/modules/$kver" "$kdir.new/modules"
  rm -rf "$kdir" && mv "$kdir.new" "$kdir"
  rm -rf "$tmp"
fi
# The stand-in guest's QEMU guest agent: Debian's qemu-guest-agent from the
# release QEMU came from, unpacked rather than installed (a host needs no
# agent of its own). standin-flake.sh copies it with its libraries.
ga=/var/cache/miniguest-test/qemu-ga
ga_version=$(dpkg-query -W -f '${Version}' qemu-system-x86)
if [ "$(cat "$ga/version" 2>/dev/null)" != "$ga_version" ]; then
  tmp=$(mktemp -d)
  if [ "$qemu_suite" = bookworm ]; then
    (cd "$tmp" && { apt-get download "qemu-guest-agent=$ga_version" || { apt-get update -q && apt-get download "qemu-guest-agent=$ga_version"; }; })
  else
    (cd "$tmp" && private_apt "$qemu_suite" -q=2 download "qemu-guest-agent=$ga_version")
  fi
  rm -rf "$ga.new" && mkdir -p "$ga.new"
  dpkg-deb -x "$tmp"/qemu-guest-agent_*.deb "$ga.new/root"
  echo "$ga_version" > "$ga.new/version"
  rm -rf "$ga" && mv "$ga.new" "$ga"
  rm -rf "$tmp"
fi
echo "setup-host: ready"
