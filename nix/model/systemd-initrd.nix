# systemd stage 1 as nixos/modules/system/boot/systemd/initrd.nix builds
# it, for the systemd stand-in's VMs: Debian's systemd is /init, with the
# unit set NixOS enables in an initrd (and udev's, from
# services/hardware/udev.nix), the configuration's
# boot.initrd.systemd.services, and the file systems stage 1 mounts given
# to systemd's own fstab generator the way tasks/filesystems.nix gives
# them: an fstab of fileSystems needed for boot, without /sysroot, named
# by SYSTEMD_SYSROOT_FSTAB in the manager's environment. The generator
# puts them under /sysroot; udev loads the virtio devices' modules; then
# initrd.target, and switch-root into init=.
#
# The initrd holds the store paths it needs at their own paths, with the
# libraries each program needs (found from its ELF headers, as nixpkgs'
# make-initrd-ng finds them), rather than whole packages.
{ config, lib, pkgs, utils, ... }:
let
  cfg = config.boot.initrd.systemd;
  systemd = cfg.package;
  busybox = pkgs.busybox;
  unitLib = import ./systemd-lib.nix { inherit lib pkgs; };
  enabled = config.system.standin.systemd && config.boot.initrd.enable && cfg.enable;

  # initrd.nix's upstreamUnits, and udev.nix's for the initrd. Those
  # Debian's systemd 257 does not ship (systemd-bsod needs a library it was
  # built without) are left out when the initrd is assembled.
  upstreamUnits = [
    "basic.target" "breakpoint-pre-udev.service" "breakpoint-pre-basic.service"
    "breakpoint-pre-mount.service" "breakpoint-pre-switch-root.service" "ctrl-alt-del.target"
    "debug-shell.service" "emergency.service" "emergency.target" "final.target" "halt.target"
    "initrd-cleanup.service" "initrd-fs.target" "initrd-parse-etc.service"
    "initrd-root-device.target" "initrd-root-fs.target" "initrd-switch-root.service"
    "initrd-switch-root.target" "initrd.target" "kexec.target" "kmod-static-nodes.service"
    "local-fs-pre.target" "local-fs.target" "modprobe@.service" "multi-user.target"
    "paths.target" "poweroff.target" "reboot.target" "rescue.service" "rescue.target"
    "rpcbind.target" "shutdown.target" "sigpwr.target" "slices.target" "sockets.target"
    "swap.target" "sysinit.target" "sys-kernel-config.mount" "syslog.socket"
    "systemd-ask-password-console.path" "systemd-ask-password-console.service"
    "systemd-factory-reset-complete.service" "factory-reset-now.target" "systemd-fsck@.service"
    "systemd-halt.service" "systemd-hibernate-resume.service" "systemd-journald-audit.socket"
    "systemd-journald-dev-log.socket" "systemd-journald.service" "systemd-journald.socket"
    "systemd-kexec.service" "systemd-modules-load.service" "systemd-poweroff.service"
    "systemd-reboot.service" "systemd-sysctl.service" "timers.target" "umount.target"
    "systemd-bsod.service"
    # udev.nix
    "initrd-udevadm-cleanup-db.service" "systemd-udevd-control.socket"
    "systemd-udevd-kernel.socket" "systemd-udevd.service" "systemd-udev-trigger.service"
  ] ++ cfg.additionalUpstreamUnits;
  units = lib.subtractLists cfg.suppressedUnits upstreamUnits;

  # The programs initrd.nix (storePaths) and udev.nix put in the initrd.
  helpers = [
    "systemd" "systemd-executor" "systemd-fsck" "systemd-hibernate-resume" "systemd-journald"
    "systemd-makefs" "systemd-modules-load" "systemd-remount-fs" "systemd-shutdown"
    "systemd-sulogin-shell" "systemd-sysctl" "systemd-bsod" "systemd-sysroot-fstab-check"
    "systemd-factory-reset" "systemd-udevd"
  ];
  generators = [
    "systemd-debug-generator" "systemd-fstab-generator" "systemd-gpt-auto-generator"
    "systemd-hibernate-resume-generator" "systemd-run-generator" "systemd-factory-reset-generator"
  ];
  udevHelpers = [ "ata_id" "cdrom_id" "scsi_id" "dmi_memory_id" ];
  # Libraries systemd and kmod open at run time rather than link: module
  # loading, and the journal's compression.
  dlopened = [ "libkmod.so.2" "libzstd.so.1" "liblz4.so.1" "liblzma.so.5" "libnss_files.so.2" ];

  # tasks/filesystems.nix's initrdFstab: the file systems needed for boot,
  # each as its fstab line (spaces in a field escaped), no check for those
  # fsck cannot check.
  escape = builtins.replaceStrings [ " " "\t" ] [ "\\040" "\\011" ];
  noCheck = [ "none" "auto" "overlay" "tmpfs" "9p" "virtiofs" "squashfs" "ext4" ];
  fstabLine = fs:
    let device = if fs.device != null then fs.device else throw "No device specified for mount point ‘${fs.mountPoint}’."; in
    "${escape device} ${escape fs.mountPoint} ${fs.fsType} ${escape (lib.concatStringsSep "," fs.options)} 0 ${
      if fs.noCheck || lib.elem fs.fsType noCheck || lib.elem "bind" fs.options then "0"
      else if fs.mountPoint == "/" then "1" else "2"}\n";
  initrdFstab = pkgs.writeText "initrd-fstab"
    (lib.concatMapStrings fstabLine (lib.filter utils.fsNeededForBoot (lib.attrValues config.fileSystems)));

  # PID 1's settings (settings.Manager), and its own environment.
  managerEnvironment = { PATH = "/bin:/sbin"; SYSTEMD_SYSROOT_FSTAB = "${initrdFstab}"; };
  systemConf = unitLib.section "Manager" {
    ManagerEnvironment = lib.concatStringsSep " " (lib.mapAttrsToList (n: v: "${n}=${lib.escapeShellArg v}") managerEnvironment);
    DefaultEnvironment = "PATH=/bin:/sbin";
  };

  serviceUnit = unitLib.serviceUnit { inherit systemd; };
  declared = lib.filterAttrs (_: s: s.enable) cfg.services;
  declaredUnits = lib.concatStrings (lib.mapAttrsToList (name: svc: "${name}.service ${serviceUnit name svc}\n") declared);
  wanted = lib.concatStrings (lib.mapAttrsToList
    (name: svc: lib.concatMapStrings (t: "${t}.wants ${name}.service\n") svc.wantedBy
      + lib.concatMapStrings (t: "${t}.requires ${name}.service\n") svc.requiredBy)
    declared);
  # initrd.nix's mount of /run under /sysroot, for /run/booted-system and
  # the rest of what stage 1 leaves in /run.
  sysrootRun = pkgs.writeText "sysroot-run.mount" (
    unitLib.section "Unit" { DefaultDependencies = false; Before = "initrd-fs.target"; }
    + unitLib.section "Mount" { What = "/run"; Where = "/sysroot/run"; Options = "rbind"; });

  osRelease = pkgs.writeText "initrd-release" ''
    NAME=NixOS
    ID=nixos
    VERSION_ID="${config.system.nixos.label}"
    PRETTY_NAME="NixOS ${config.system.nixos.label} (Miniguest systemd stand-in) (Initrd)"
  '';
  # users-groups.nix's initrd accounts and groups.
  initrdGroups = [ "root" "nogroup" "systemd-journal" "tty" "dialout" "kmem" "input" "video"
    "render" "sgx" "audio" "lp" "disk" "cdrom" "tape" "kvm" ];
  passwd = ''
    root:x:0:0::/var/empty:/bin/sh
    nobody:x:65534:65534::/var/empty:/bin/nologin
  '';
  group = lib.concatMapStrings (g: "${g}:x:${toString config.ids.gids.${g}}:\n") initrdGroups;

  initrd = pkgs.runCommand "initrd-systemd" {
    inherit units declaredUnits wanted passwd group systemConf;
    hostName = config.networking.hostName;
    kernelModules = lib.concatStringsSep "\n" config.boot.initrd.kernelModules;
    passAsFile = [ "declaredUnits" "wanted" "passwd" "group" "systemConf" "kernelModules" ];
  } ''
    root=$PWD/root
    mkdir -p $root
    is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = 177ELF ]; }
    # A store path (a file, link or directory) at its own path in the
    # initrd, with what it needs there.
    add() {
      local f=$1
      { [ -e "$root$f" ] || [ -L "$root$f" ]; } && return 0
      [ -e "$f" ] || [ -L "$f" ] || { echo "initrd: no $f" >&2; return 1; }
      mkdir -p "$root$(dirname "$f")"
      cp -a "$f" "$root$f"
      [ -L "$f" ] || chmod -R u+w "$root$f"
      needs "$f"
    }
    # What a copied path needs: where a link leads, what each entry of a
    # directory needs, and the loader and libraries an ELF file names.
    needs() {
      local f=$1 t interp n d found
      if [ -L "$f" ]; then
        t=$(readlink "$f")
        case "$t" in /*) add "$t" ;; *) add "$(dirname "$f")/$t" ;; esac
      elif [ -d "$f" ]; then
        find "$f" -type f -o -type l | while read -r n; do needs "$n"; done
      elif is_elf "$f"; then
        interp=$(patchelf --print-interpreter "$f" 2>/dev/null || true)
        [ -z "$interp" ] || add "$interp"
        for n in $(patchelf --print-needed "$f"); do
          found=
          for d in $(patchelf --print-rpath "$f" | tr : ' '); do
            if [ -e "$d/$n" ]; then add "$d/$n"; found=1; break; fi
          done
          [ -n "$found" ] || { echo "initrd: $f needs $n, not found in its run path" >&2; return 1; }
        done
      fi
    }

    up=${systemd}/lib/systemd/system
    for h in ${lib.concatStringsSep " " helpers}; do
      if [ -e ${systemd}/lib/systemd/$h ]; then add ${systemd}/lib/systemd/$h; fi
    done
    for g in ${lib.concatStringsSep " " generators}; do
      if [ -e ${systemd}/lib/systemd/system-generators/$g ]; then add ${systemd}/lib/systemd/system-generators/$g; fi
    done
    for h in ${lib.concatStringsSep " " udevHelpers}; do
      if [ -e ${systemd}/lib/udev/$h ]; then add ${systemd}/lib/udev/$h; fi
    done
    add ${systemd}/lib/udev/rules.d
    for l in ${lib.concatStringsSep " " dlopened}; do
      if [ -e ${systemd}/lib/$l ]; then add ${systemd}/lib/$l; fi
    done
    add ${pkgs.standinModules}
    add ${initrdFstab}

    # initrdBin: systemd's programs, kmod's, mount and the emergency
    # shell's (busybox here, for coreutils and bash), in /bin and the
    # other three names.
    mkdir -p $root/bin $root/usr/lib/systemd $root/usr/lib/udev $root/lib
    for b in ${systemd}/bin/* ${systemd.kmod}/bin/* ${busybox}/bin/*; do
      if ! [ -e "$root/bin/''${b##*/}" ]; then add "$b"; ln -s "$b" "$root/bin/"; fi
    done
    for b in mount umount sulogin; do
      add ${systemd.util-linux}/bin/$b
      ln -sfn ${systemd.util-linux}/bin/$b $root/bin/$b
    done
    ln -s bin $root/sbin
    ln -s ../bin $root/usr/bin
    ln -s ../bin $root/usr/sbin
    # Debian built systemd for /usr: its compiled-in helpers and udev's
    # programs are found there.
    for h in ${systemd}/lib/systemd/*; do
      if [ -f "$h" ] && [ -e "$root$h" ]; then ln -s "$h" $root/usr/lib/systemd/; fi
    done
    for h in ${systemd}/lib/udev/*; do
      if [ -f "$h" ] && [ -e "$root$h" ]; then ln -s "$h" $root/usr/lib/udev/; fi
    done
    ln -s ${pkgs.standinModules} $root/lib/modules

    # The units: upstream ones copied from the package, the targets' wants
    # for those enabled, the declared services (a drop-in where they
    # change an upstream unit), and initrd.target as the default.
    sys=$root/etc/systemd/system
    mkdir -p $sys
    for u in $units; do
      if [ -e "$up/$u" ]; then cp -L "$up/$u" "$sys/$u"; fi
    done
    if [ -d "$up/sysinit.target.wants" ]; then
      mkdir -p $sys/sysinit.target.wants
      for e in "$up"/sysinit.target.wants/*; do
        n=''${e##*/}
        if [ -e "$sys/$n" ] || [ -e "$sys/''${n%%@*}@.''${n##*.}" ]; then ln -s "../$n" "$sys/sysinit.target.wants/$n"; fi
      done
    fi
    while read -r name file; do
      [ -n "$name" ] || continue
      if [ -e "$sys/$name" ]; then
        mkdir -p "$sys/$name.d"
        cp "$file" "$sys/$name.d/overrides.conf"
      else
        cp "$file" "$sys/$name"
      fi
      add "$file"
    done < "$declaredUnitsPath"
    while read -r dir name; do
      [ -n "$dir" ] || continue
      mkdir -p "$sys/$dir"
      ln -sfn "../$name" "$sys/$dir/$name"
    done < "$wantedPath"
    cp ${sysrootRun} $sys/sysroot-run.mount
    mkdir -p $sys/initrd-fs.target.requires
    ln -s ../sysroot-run.mount $sys/initrd-fs.target.requires/
    ln -s initrd.target $sys/default.target
    mkdir -p $root/etc/systemd/system-generators
    for g in ${lib.concatStringsSep " " generators}; do
      if [ -e "$root${systemd}/lib/systemd/system-generators/$g" ]; then ln -s ${systemd}/lib/systemd/system-generators/$g $root/etc/systemd/system-generators/; fi
    done
    # What the units run: their scripts and the programs their PATH names.
    for p in $(cat $sys/*.service $sys/*.d/*.conf 2>/dev/null | grep -o '/nix/store/[^ ":=]*' | sort -u); do
      add "$p"
    done

    cp "$systemConfPath" $root/etc/systemd/system.conf
    cp ${osRelease} $root/etc/initrd-release
    ln -s initrd-release $root/etc/os-release
    printf '%s\n' "$hostName" > $root/etc/hostname
    echo 'root:*:::::::' > $root/etc/shadow
    cp "$passwdPath" $root/etc/passwd
    cp "$groupPath" $root/etc/group
    mkdir -p $root/etc/modules-load.d $root/etc/sysctl.d $root/etc/udev
    cp "$kernelModulesPath" $root/etc/modules-load.d/nixos.conf
    echo 'kernel.modprobe = /sbin/modprobe' > $root/etc/sysctl.d/nixos.conf
    ln -s ${systemd}/lib/udev/rules.d $root/etc/udev/rules.d
    ln -s ${systemd}/lib/systemd/systemd $root/init
    mkdir -p $root/dev $root/proc $root/sys $root/run $root/sysroot $root/tmp $root/var
    (cd $root && find . | cpio -o -H newc --quiet) | gzip -1 > $out
  '';
in
{
  config = lib.mkIf enabled {
    system.build.standinSystemdInitrd = initrd;
  };
}
