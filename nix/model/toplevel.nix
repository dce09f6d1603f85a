# system.build.toplevel for the model: what NixOS's top-level.nix, stage-1
# and stage-2 make, cut down to the stand-in guest. Its `init` (stage 2)
# reports what the guest sees; its `initrd` (stage 1) loads the configured
# kernel modules and mounts, in order, exactly the file systems NixOS's
# scripted stage 1 would (utils.fsNeededForBoot), with their options, then
# switches to the root and runs the `init=` the kernel was given. So a boot
# test of a model guest exercises the guest module's own fileSystems and
# kernelParams. Failed assertions abort the build with NixOS's message.
{ config, lib, pkgs, ... }:
let
  # nixos/lib/utils.nix
  pathsNeededForBoot = [ "/" "/nix" "/nix/store" "/var" "/var/log" "/var/lib" "/var/lib/nixos" "/etc" "/usr" ];
  fsNeededForBoot = fs: fs.neededForBoot || lib.elem fs.mountPoint pathsNeededForBoot;

  q = lib.escapeShellArg;
  busybox = pkgs.busybox;
  fileSystems = lib.sort (a: b: a.mountPoint < b.mountPoint) (lib.attrValues config.fileSystems);
  bootFileSystems = lib.filter fsNeededForBoot fileSystems;
  laterFileSystems = lib.filter (fs: !fsNeededForBoot fs) fileSystems;

  # The kernel sees what mount(8) passes on: x-* options are userspace's.
  kernelOptions = fs: lib.concatStringsSep "," (lib.filter
    (o: !(lib.hasPrefix "x-" o) && o != "defaults" && o != "nofail")
    fs.options);

  # udev's /dev/disk/by-id/virtio-SERIAL, found the way udev does.
  resolveDevice = ''
    resolve() {
      case "$1" in
        /dev/disk/by-id/virtio-*)
          want=''${1#/dev/disk/by-id/virtio-}
          for b in /sys/block/vd*; do
            if [ "$(cat "$b/serial" 2>/dev/null)" = "$want" ]; then echo "/dev/''${b##*/}"; return; fi
          done
          echo "$1" ;;
        *) echo "$1" ;;
      esac
    }
  '';
  mountAll = root: list: lib.concatMapStrings
    (fs:
      let opts = kernelOptions fs; in ''
        mkdir -p ${q "${root}${fs.mountPoint}"}
        mount -t ${q fs.fsType} ${lib.optionalString (opts != "") "-o ${q opts}"} "$(resolve ${q (toString fs.device)})" ${q "${root}${fs.mountPoint}"} \
          || fail ${q "cannot mount ${fs.mountPoint}"}
      '')
    list;

  # What the kernel would request for each file system type (ext4 asks for
  # the crc32c checksum when it mounts).
  modulesFor = { ext4 = [ "crc32c_generic" "ext4" ]; "9p" = [ "9p" ]; virtiofs = [ "virtiofs" ]; };
  fsModules = lib.unique (lib.concatMap (fs: modulesFor.${fs.fsType} or [ ]) fileSystems);

  stage1 = pkgs.writeText "stage-1-init" ''
    #!/bin/busybox sh
    /bin/busybox --install -s /bin
    fail() { echo "stage 1: $1"; poweroff -f; }
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    modprobe -a ${lib.concatStringsSep " " config.boot.initrd.kernelModules} || fail "cannot load boot.initrd.kernelModules"
    # What udev's coldplug and the file systems would load.
    for m in ${lib.concatStringsSep " " (config.boot.initrd.availableKernelModules ++ fsModules)}; do modprobe "$m" 2>/dev/null || true; done
    ${resolveDevice}
    init=
    for p in $(cat /proc/cmdline); do case "$p" in init=*) init=''${p#init=} ;; esac; done
    [ -n "$init" ] || fail "no init= on the kernel command line"
    ${mountAll "/mnt-root" bootFileSystems}
    # As NixOS's stage 1 does, the kernel file systems move with the root.
    for d in proc sys dev; do mkdir -p /mnt-root/$d; mount --move /$d /mnt-root/$d; done
    exec switch_root /mnt-root "$init"
  '';

  initrd = pkgs.runCommand "initrd" { } ''
    root=$PWD/root
    mkdir -p $root/bin $root/dev $root/proc $root/sys $root/mnt-root $root/lib
    cp ${busybox}/bin/busybox $root/bin/busybox
    cp -r ${pkgs.standinModules} $root/lib/modules
    cp ${stage1} $root/init
    chmod +x $root/init
    (cd $root && find . | cpio -o -H newc --quiet) | gzip -1 > $out
  '';

  stage2 = pkgs.writeScript "stage-2-init" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin
    fail() { echo "stage 2: $1"; }
    ${resolveDevice}
    ${lib.optionalString (!config.boot.isContainer) (mountAll "" laterFileSystems)}
    writable() {
      if touch "$1/.miniguest-probe" 2>/dev/null; then rm -f "$1/.miniguest-probe"; echo yes; else echo no; fi
    }
    # User-mode networking's guest address (QEMU's slirp); NixOS would ask
    # DHCP.
    if [ -d /sys/class/net/eth0 ]; then
      ip link set lo up
      ip link set eth0 up
      ip addr add 10.0.2.15/24 dev eth0 2>/dev/null
    fi
    echo "STANDIN-BOOTED name=${config.networking.hostName} version=${config.system.nixos.label}"
    store=$(writable /nix/store)
    boot=$(writable /boot)
    # Who owns the program inside (a store file, and /boot): a mapped
    # container's root must see its own root there, not nobody.
    store_owner=$(stat -L -c %u:%g /boot/init 2>/dev/null || echo none)
    boot_owner=$(stat -c %u:%g /boot 2>/dev/null || echo none)
    # Try what a hostile root would: remount the store read-write and write
    # to it. Both forms: a bind remount makes only the mount writable, a
    # plain one the file system too. Only the host side can stop that.
    remount_rw=refused
    mount -o remount,rw,bind /nix/store 2>/dev/null && remount_rw=allowed
    mount -o remount,rw /nix/store 2>/dev/null && remount_rw=allowed
    remount=$(writable /nix/store)
    disks=$(ls /sys/block 2>/dev/null | grep -v '^loop' | tr '\n' , || true)
    state=absent
    if [ -d /state ]; then state=$(writable /state); fi
    var=$(grep ' /var ' /proc/mounts | cut -d' ' -f3)
    mem=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
    echo "STANDIN-STATE disks=$disks state-writable=$state var=''${var:-none} mem-kib=$mem"
    echo "STANDIN-CHECK store-writable=$store boot-writable=$boot store-writable-after-remount=$remount remount-rw=$remount_rw store-owner=$store_owner boot-owner=$boot_owner"
    echo "STANDIN-DONE"
    ${lib.optionalString (lib.elem "standin.stay" config.boot.kernelParams) ''
      # Keep running until asked to stop (LXC sends SIGPWR to init), and
      # answer on port 22.
      printf '#!${busybox}/bin/sh\necho STANDIN-HELLO name=${config.networking.hostName}\n' > /standin-hello
      chmod +x /standin-hello
      nc -ll -p 22 -e /standin-hello 2>/dev/null &
      trap 'echo STANDIN-STOPPING; exit 0' PWR TERM INT
      while true; do sleep 1; done
    ''}
    if [ -z "''${container:-}" ]; then sync; poweroff -f; fi
  '';

  failedAssertions = map (x: x.message) (lib.filter (x: !x.assertion) config.assertions);
  checked = if failedAssertions != [ ]
    then throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failedAssertions}"
    else lib.showWarnings config.warnings;
in
{
  config = {
    system.name = lib.mkDefault (if config.networking.hostName == "" then "unnamed" else config.networking.hostName);
    nix.package = lib.mkDefault pkgs.nix;
    system.build.toplevel = checked (pkgs.runCommand "nixos-system-${config.system.name}-${config.system.nixos.label}" { } ''
      mkdir -p $out
      ln -s ${stage2} $out/init
      ln -s ${pkgs.standinKernel} $out/kernel
      ln -s ${initrd} $out/initrd
      echo -n ${q (lib.concatStringsSep " " config.boot.kernelParams)} > $out/kernel-params
    '');
  };
}
