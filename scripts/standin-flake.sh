#!/usr/bin/env bash
# Lays out the stand-in guest flake in DIR: the fixture flake, the project's
# nix/ (the guest module, the NixOS model and the contract), nixpkgs' lib
# (vendored beside the project, or MINIGUEST_NIXPKGS_LIB), and what the
# model's toplevel boots: Debian's kernel (unpacked by setup-host.sh), the
# host's static busybox and the kernel modules stage 1 loads, with their
# dependencies. Used by the demo and by the boot tests.
# Also Debian's qemu-ga (unpacked by setup-host.sh) with the host
# libraries it links and their loader, for the stand-in's
# services.qemuGuest.
# Usage: standin-flake.sh DIR [VERSION]
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
version=${2:-1}
kdir=${MINIGUEST_TEST_KERNEL_DIR:-/var/cache/miniguest-test/kernel}
nixpkgs_lib=${MINIGUEST_NIXPKGS_LIB:-$root/../shared/vendor/nixpkgs-lib}

mkdir -p "$dir"
cp "$root/crates/miniguest/tests/fixtures/standin/flake.nix" "$dir/"
cp -r "$root/nix" "$dir/nix"
cp -r "$nixpkgs_lib" "$dir/nixpkgs-lib"
files="$dir/nix/model/files"
mkdir -p "$files"
cp /bin/busybox "$files/busybox"
cp "$kdir/vmlinuz" "$files/vmlinuz"
printf '{"version":"%s"}\n' "$version" > "$dir/params.json"

modules=$(readlink -f "$kdir/modules")
kver=$(basename "$modules")
out="$files/modules/$kver"
mkdir -p "$out"
: > "$out/modules.dep"
# The contract's share and disk modules, and ext4 (with its checksum) for
# volumes.
# button and evdev: the power button's events, for the stand-in's acpid.
wanted="ext4 crc32c_generic button evdev $(nix-instantiate --eval --strict --json "$root/nix/lib/contract.nix" -A initrdModules \
  | tr -c 'A-Za-z0-9_\n' ' ') $(nix-instantiate --eval --strict --json "$root/nix/lib/contract.nix" -A agentModules \
  | tr -c 'A-Za-z0-9_\n' ' ') $(nix-instantiate --eval --strict --json "$root/nix/lib/contract.nix" -A credentialModules \
  | tr -c 'A-Za-z0-9_\n' ' ')"
# modules.dep lines list a module's whole dependency closure.
files_wanted=$(for m in $wanted; do
  grep -E "/$m\.ko(\.[a-z]+)?:" "$modules/modules.dep" | tr -d ':' | tr ' ' '\n'
done | sort -u)
for f in $files_wanted; do
  mkdir -p "$out/$(dirname "$f")"
  cp "$modules/$f" "$out/$f"
  grep -E "^$f:" "$modules/modules.dep" >> "$out/modules.dep"
done

ga_root=${MINIGUEST_TEST_QEMU_GA:-/var/cache/miniguest-test/qemu-ga/root}
mkdir -p "$files/qemu-ga/lib"
cp "$ga_root/usr/sbin/qemu-ga" "$files/qemu-ga/qemu-ga"
for lib in $(ldd "$ga_root/usr/sbin/qemu-ga" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  cp -L "$lib" "$files/qemu-ga/lib/"
done

# The systemd stand-in's programs (MINIGUEST_STANDIN_SYSTEMD=1): Debian
# 13's systemd, udev and kmod, util-linux's mount, agetty, sulogin and setpriv, sudo and
# PAM's modules, OpenSSH's server, and Nix, with their libraries and
# loader, as trixie-tools.sh unpacked them. The model's pkgs.systemd and
# pkgs.nix put them in the store and point them at their libraries.
if [ -n "${MINIGUEST_STANDIN_SYSTEMD:-}" ]; then
  trixie=${MINIGUEST_TEST_TRIXIE_ROOT:-/var/cache/miniguest-test/trixie/root}
  t="$files/trixie"
  mkdir -p "$t/bin" "$t/lib"
  cp -a "$trixie/usr/lib/systemd" "$t/lib/systemd"
  cp -a "$trixie/usr/lib/udev" "$t/lib/udev"
  for b in systemctl journalctl systemd-creds systemd-tmpfiles systemd-escape systemd-run busctl udevadm mount umount nix; do
    cp -a "$trixie/usr/bin/$b" "$t/bin/"
  done
  # As systemd-sysv (and NixOS's systemd package): the old names of the
  # power commands are systemctl's, which qemu-ga's shutdown runs.
  for b in halt poweroff reboot shutdown; do ln -s systemctl "$t/bin/$b"; done
  cp -a "$trixie/usr/sbin/agetty" "$trixie/usr/sbin/sulogin" "$trixie/usr/bin/setpriv" "$trixie/usr/bin/sudo" "$trixie/usr/bin/sudoedit" "$t/bin/"
  # sudo's plugins (its own library among them) and PAM's modules.
  mkdir -p "$t/libexec"
  cp -a "$trixie/usr/libexec/sudo" "$t/libexec/sudo"
  cp -a "$trixie"/usr/libexec/sudo/libsudo_util.so* "$t/lib/"
  cp -a "$trixie/usr/lib/x86_64-linux-gnu/security" "$t/lib/security"
  cp -a "$trixie/usr/sbin/unix_chkpwd" "$t/bin/"
  # OpenSSH's server, its session programs and key generator, and the
  # moduli it ships.
  cp -a "$trixie/usr/sbin/sshd" "$trixie/usr/bin/ssh-keygen" "$t/bin/"
  cp -a "$trixie/usr/lib/openssh" "$t/libexec/openssh"
  mkdir -p "$t/etc/ssh"
  cp -a "$trixie/etc/ssh/moduli" "$t/etc/ssh/"
  # kmod, as systemd's package carries it for NixOS's initrd: modprobe for
  # the kernel and modprobe@.service, and the module indexes libkmod reads
  # (depmod writes them for the modules copied above).
  cp -a "$trixie/usr/bin/kmod" "$t/bin/"
  for b in modprobe insmod rmmod lsmod modinfo depmod; do ln -s kmod "$t/bin/$b"; done
  cp "$modules/modules.builtin" "$modules/modules.builtin.modinfo" "$modules/modules.order" "$out/"
  depmod_root=$(mktemp -d)
  mkdir -p "$depmod_root/lib"
  ln -s "$files/modules" "$depmod_root/lib/modules"
  "$trixie/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$trixie/usr/lib/x86_64-linux-gnu" \
    --argv0 depmod "$trixie/usr/bin/kmod" -b "$depmod_root" "$kver"
  rm -rf "$depmod_root"
  ln -s nix "$t/bin/nix-store"
  ln -s nix "$t/bin/nix-env"
  find "$trixie/usr/lib/x86_64-linux-gnu" "$trixie/usr/lib/x86_64-linux-gnu/systemd" -maxdepth 1 -name '*.so*' \
    -exec cp -aL {} "$t/lib/" \;
fi

