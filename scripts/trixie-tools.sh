#!/usr/bin/env bash
# Tools from Debian 13 (trixie) for a Debian 12 test machine, without
# installing them: Nix 2.26 (so the suite proves the CLI on a modern Nix
# beside Debian 12's 2.8) and, where the host has none, virtiofsd (QEMU 8
# and later no longer ship one). Their packages and library closure are
# unpacked into a private directory, and wrappers start them through
# trixie's own loader. System packages and the system's Nix stay as they are.
# Idempotent. Usage: trixie-tools.sh
set -euo pipefail
# shellcheck source=scripts/apt-private.sh
. "$(dirname "$0")/apt-private.sh"

base=/var/cache/miniguest-test/trixie
root=$base/root
lib=$root/usr/lib/x86_64-linux-gnu
nix_bin=/var/cache/miniguest-test/nix-2.26/bin
tool_bin=/var/cache/miniguest-test/bin

host_virtiofsd() {
  for p in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd /usr/lib/virtiofsd; do
    [ -x "$p" ] && return 0
  done
  command -v virtiofsd >/dev/null 2>&1 && ! [ "$(command -v virtiofsd)" = "$tool_bin/virtiofsd" ]
}

# systemd, udev, kmod, util-linux (mount, agetty, sulogin, setpriv), sudo
# with PAM's modules, OpenSSH's server and client (sshd, ssh-keygen), and
# zlib (which systemd's tools load but the library walk, keeping to lib*
# packages, misses): the systemd stand-in's.
packages=(nix-bin systemd udev kmod mount util-linux sudo libpam-modules zlib1g openssh-server openssh-client)
host_virtiofsd || packages+=(virtiofsd)

stamp=$base/packages
if [ "$(cat "$stamp" 2>/dev/null)" != "${packages[*]}" ]; then
  rm -rf "$base.new"
  mkdir -p "$base.new/debs" "$base.new/root"
  closure=$(private_apt_closure trixie "${packages[@]}")
  # shellcheck disable=SC2086
  (cd "$base.new/debs" && private_apt trixie --only -q=2 download $closure)
  for deb in "$base.new"/debs/*.deb; do dpkg-deb -x "$deb" "$base.new/root"; done
  rm -rf "$base.new/debs"
  echo "${packages[*]}" > "$base.new/packages"
  rm -rf "$base" && mv "$base.new" "$base"
fi

# A wrapper per program: trixie's loader and libraries, the program's own
# name as argv[0] (Nix's commands are one binary that reads it).
wrap() {
  local wrapper=$1 program=$2 name=$3 extra=${4:-}
  mkdir -p "$(dirname "$wrapper")"
  cat > "$wrapper.new" <<WRAPPER
#!/bin/sh
# $name from Debian 13, unpacked by scripts/trixie-tools.sh.
$extra
exec $lib/ld-linux-x86-64.so.2 --library-path $lib --argv0 $name $program "\$@"
WRAPPER
  chmod 755 "$wrapper.new"
  mv "$wrapper.new" "$wrapper"
}

# Started through the loader, this Nix cannot re-execute itself as the
# build hook: remote builds are off, local builds unaffected.
hook_off='export NIX_CONFIG="build-hook =${NIX_CONFIG:+
$NIX_CONFIG}"'
for tool in nix nix-build nix-collect-garbage nix-env nix-instantiate nix-store; do
  wrap "$nix_bin/$tool" "$root/usr/bin/nix" "$tool" "$hook_off"
done
if [ -x "$root/usr/libexec/virtiofsd" ]; then
  wrap "$tool_bin/virtiofsd" "$root/usr/libexec/virtiofsd" virtiofsd
fi

# Every library the programs need is there.
for program in "$root/usr/bin/nix" "$root/usr/libexec/virtiofsd"; do
  [ -e "$program" ] || continue
  if "$lib/ld-linux-x86-64.so.2" --library-path "$lib" --list "$program" | grep -q 'not found'; then
    echo "trixie-tools: $program lacks libraries:" >&2
    "$lib/ld-linux-x86-64.so.2" --library-path "$lib" --list "$program" | grep 'not found' >&2
    exit 1
  fi
done
# ...and every library each ELF file of the stand-in's names is among them.
for f in "$root"/usr/bin/nix "$root"/usr/bin/systemctl "$root"/usr/bin/udevadm "$root"/usr/sbin/agetty "$root"/usr/lib/systemd/systemd "$root"/usr/lib/systemd/systemd-* "$lib"/systemd/*.so; do
  [ -f "$f" ] || continue
  for needed in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -e "$lib/$needed" ] || [ -e "$lib/systemd/$needed" ] || {
      echo "trixie-tools: $f needs $needed, which is not unpacked" >&2
      exit 1
    }
  done
done
echo "trixie-tools: $("$nix_bin/nix" --version), $("$lib/ld-linux-x86-64.so.2" --library-path "$lib:$lib/systemd" "$root/usr/bin/systemctl" --version | head -n 1)$([ -x "$tool_bin/virtiofsd" ] && echo ", virtiofsd in $tool_bin")"
