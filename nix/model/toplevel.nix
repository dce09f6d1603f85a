# system.build.toplevel for the model: what NixOS's top-level.nix, stage-1
# and stage-2 make, cut down to the stand-in guest. Its `init` (stage 2)
# reports what the guest sees; its `initrd` (stage 1) loads the configured
# kernel modules and mounts exactly the file systems NixOS's stage 1 would
# (utils.fsNeededForBoot), with their options, then switches to the root and
# runs the `init=` the kernel was given. So a boot test of a model guest
# exercises the guest module's own fileSystems and kernelParams. Failed
# assertions abort the build with NixOS's message.
#
# Stage 1 follows the contract of the one the configuration selects:
# - systemd stage 1 (boot.initrd.systemd.enable, NixOS's default since
#   26.05): every file system is a mount unit under /sysroot, started in an
#   order systemd could choose: after the mounts of its parents, after the
#   units its x-systemd.requires= (pulled in) and x-systemd.after= (if
#   pulled in) name and the mounts x-systemd.requires-mounts-for= needs;
#   modprobe@MODULE.service loads MODULE; a device path is waited for up to
#   x-systemd.device-timeout= (90 s by default). Stage 1 prints the units
#   in the order it ran them (STANDIN-STAGE1), so that tests can check it.
# - scripted stage 1 (older releases): the file systems mounted under
#   /mnt-root, in the order NixOS sorts them (utils.fsBefore).
{ config, lib, pkgs, utils, ... }:
let
  contract = import ../lib/contract.nix;
  inherit (utils) fsNeededForBoot;

  q = lib.escapeShellArg;
  busybox = pkgs.busybox;
  systemdStage1 = config.boot.initrd.systemd.enable;
  all = lib.attrValues config.fileSystems;
  sorted = (lib.toposort utils.fsBefore all).result or all;
  fileSystems = sorted;
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
  mountOne = root: fs:
    let opts = kernelOptions fs; in ''
      mkdir -p ${q "${root}${fs.mountPoint}"}
      mount -t ${q fs.fsType} ${lib.optionalString (opts != "") "-o ${q opts}"} "$(resolve ${q (toString fs.device)})" ${q "${root}${fs.mountPoint}"} \
        || fail ${q "cannot mount ${fs.mountPoint}"}
    '';
  mountAll = root: list: lib.concatMapStrings (mountOne root) list;

  # systemd stage 1's units for the file systems it mounts.
  optionValues = key: fs: lib.concatMap
    (o: let m = builtins.match "${key}=(.*)" o; in if m == null then [ ] else lib.splitString " " (lib.head m))
    fs.options;
  mountUnit = fs: "${utils.escapeSystemdPath "/sysroot${fs.mountPoint}"}.mount";
  mountsByUnit = lib.listToAttrs (map (fs: lib.nameValuePair (mountUnit fs) fs) bootFileSystems);
  # The mounts that hold a path (RequiresMountsFor=), outermost first.
  mountsFor = path: map mountUnit (lib.filter
    (fs: lib.hasPrefix (if fs.mountPoint == "/" then "/" else "${fs.mountPoint}/") "${path}/")
    bootFileSystems);
  # What a mount pulls in, and what it is only ordered after.
  requiresOf = fs:
    lib.remove (mountUnit fs) (mountsFor fs.mountPoint)
    ++ optionValues "x-systemd.requires" fs
    ++ lib.concatMap (p: mountsFor (lib.removePrefix "/sysroot" p)) (optionValues "x-systemd.requires-mounts-for" fs);
  afterOf = fs: optionValues "x-systemd.after" fs;
  # Units other than mounts: modprobe@MODULE.service, and the services
  # initrd.target pulls in (boot.initrd.systemd.services).
  moduleOf = unit: let m = builtins.match "modprobe@(.+)\\.service" unit; in if m == null then null else lib.head m;
  initrdServices = lib.filterAttrs (_: u: u.enable && lib.elem "initrd.target" (u.requiredBy ++ u.wantedBy))
    config.boot.initrd.systemd.services;
  serviceOf = unit:
    let m = builtins.match "(.+)\\.service" unit; in
    if m != null && initrdServices ? ${lib.head m} then initrdServices.${lib.head m} else null;
  # A service's RequiresMountsFor= pulls in and orders after the mounts
  # that hold each path.
  serviceRequires = svc: svc.requires
    ++ lib.concatMap (p: mountsFor (lib.removePrefix "/sysroot" p))
      (lib.concatMap (lib.splitString " ") (lib.toList (svc.unitConfig.RequiresMountsFor or [ ])));
  unitRequires = unit:
    if mountsByUnit ? ${unit} then requiresOf mountsByUnit.${unit}
    else if serviceOf unit != null then serviceRequires (serviceOf unit)
    else [ ];
  unitAfter = unit:
    if mountsByUnit ? ${unit} then afterOf mountsByUnit.${unit}
    else if serviceOf unit != null then (serviceOf unit).after
    else [ ];
  known = unit: mountsByUnit ? ${unit} || moduleOf unit != null || serviceOf unit != null
    || throw "stand-in stage 1: no unit ${unit} (a file system requires it); only mounts of file systems needed for boot, modprobe@MODULE.service and initrd.target's services exist here";
  # Everything initrd.target pulls in. Its services come first, so that
  # each runs as early as its own ordering lets systemd run it: what it
  # does not wait for may well not be there yet.
  pulled = lib.genericClosure {
    startSet = map (name: { key = "${name}.service"; }) (lib.attrNames initrdServices)
      ++ map (fs: { key = mountUnit fs; }) bootFileSystems;
    operator = item: map (u: { key = u; }) (lib.filter known (unitRequires item.key));
  };
  pulledUnits = map (i: i.key) pulled;
  before = a: b: lib.elem a (unitRequires b) || lib.elem a (unitAfter b);
  ordered = lib.toposort before pulledUnits;
  unitOrder = ordered.result or (throw "stand-in stage 1: the mount units' ordering has a cycle: ${lib.concatStringsSep " -> " ordered.cycle}");
  deviceTimeout = fs: let t = optionValues "x-systemd.device-timeout" fs; in if t == [ ] then "90s" else lib.head t;
  # What the model does of NixOS's initrd services.
  serviceActions = {
    # The system is where init= points, under /sysroot: a link there
    # means its file system is mounted (the link leads into the store).
    initrd-find-nixos-closure = ''
      if ! [ -L "/sysroot$init" ] && ! [ -e "/sysroot$init" ]; then
        fail "initrd-find-nixos-closure: $init does not look like a NixOS installation - not activating"
      fi
    '';
  };
  runUnit = unit:
    let fs = mountsByUnit.${unit}; module = moduleOf unit; service = lib.removeSuffix ".service" unit; in
    (if module != null then ''
      modprobe ${q module} || fail ${q "${unit} failed"}
    '' else if serviceOf unit != null then
      serviceActions.${service} or (throw "stand-in stage 1: cannot run boot.initrd.systemd.services.${service}")
    else ''
      ${lib.optionalString (lib.hasPrefix "/dev/" (toString fs.device)) ''
        wait_device ${q (toString fs.device)} ${q (deviceTimeout fs)} || fail ${q "timed out waiting for ${toString fs.device} (${unit})"}
      ''}
      ${mountOne "/sysroot" fs}
    '') + ''
      units="$units,${unit}"
    '';
  waitDevice = ''
    wait_device() {
      t=$2
      case "$t" in
        *ms) t=1 ;;
        *min) t=$(( ''${t%min} * 60 )) ;;
        *s) t=''${t%s} ;;
      esac
      n=0
      while [ ! -e "$(resolve "$1")" ]; do
        [ "$n" -ge "$(( t * 10 ))" ] && return 1
        sleep 0.1; n=$((n + 1))
      done
    }
  '';

  # What the kernel would request for each file system type (ext4 asks for
  # the crc32c checksum when it mounts).
  modulesFor = { ext4 = [ "crc32c_generic" "ext4" ]; "9p" = [ "9p" ]; virtiofs = [ "virtiofs" ]; };
  fsModules = lib.unique (lib.concatMap (fs: modulesFor.${fs.fsType} or [ ]) fileSystems);

  root = if systemdStage1 then "/sysroot" else "/mnt-root";
  stage1 = pkgs.writeText "stage-1-init" ''
    #!/bin/busybox sh
    /bin/busybox --install -s /bin
    fail() { echo "stage 1: $1"; poweroff -f; }
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    modprobe -a ${lib.concatStringsSep " " config.boot.initrd.kernelModules} || fail "cannot load boot.initrd.kernelModules"
    # What udev's coldplug and the file systems would load; and what
    # stage 2's udev would (the power button and its input events: the
    # stand-in's stage 2 has no modules of its own).
    for m in ${lib.concatStringsSep " " (config.boot.initrd.availableKernelModules ++ fsModules)} button evdev; do modprobe "$m" 2>/dev/null || true; done
    ${resolveDevice}
    init=
    for p in $(cat /proc/cmdline); do case "$p" in init=*) init=''${p#init=} ;; esac; done
    [ -n "$init" ] || fail "no init= on the kernel command line"
    ${if systemdStage1 then ''
      ${waitDevice}
      units=
      ${lib.concatMapStrings runUnit unitOrder}
      echo "STANDIN-STAGE1 mode=systemd units=''${units#,}"
    '' else ''
      ${mountAll root bootFileSystems}
      echo "STANDIN-STAGE1 mode=scripted units="
    ''}
    # As NixOS's stage 1 does, the kernel file systems move with the root.
    for d in proc sys dev; do mkdir -p ${root}/$d; mount --move /$d ${root}/$d; done
    exec switch_root ${root} "$init"
  '';

  initrd = pkgs.runCommand "initrd" { } ''
    root=$PWD/root
    mkdir -p $root/bin $root/dev $root/proc $root/sys $root/mnt-root $root/sysroot $root/lib
    cp ${busybox}/bin/busybox $root/bin/busybox
    cp -r ${pkgs.standinModules} $root/lib/modules
    cp ${stage1} $root/init
    chmod +x $root/init
    (cd $root && find . | cpio -o -H newc --quiet) | gzip -1 > $out
  '';

  label = config.system.nixos.label;
  # What the stand-in says when asked whether its boot has finished (its
  # readiness command reads /run/standin-state): a label with "never" in
  # it never finishes, one with "degraded" finishes degraded, others run.
  readyState = if lib.hasInfix "never" label then "starting"
    else if lib.hasInfix "degraded" label then "degraded"
    else "running";
  agent = config.services.qemuGuest.enable && !config.boot.isContainer;
  ga = config.services.qemuGuest.package;

  # NixOS's toplevel's switch-to-configuration, for the stand-in: makes this
  # system /run/current-system and says so, and the guest then reports
  # this system's readiness.
  switchToConfiguration = pkgs.writeScript "switch-to-configuration" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin
    case "$1" in switch|test) ;; *) echo "usage: $0 switch|test" >&2; exit 1 ;; esac
    toplevel=$(dirname "$(dirname "$0")")
    echo starting > /run/standin-state
    ln -sfn "$toplevel" /run/current-system
    echo "STANDIN-SWITCHED version=${label}"
    echo "STANDIN-SWITCHED version=${label}" > /dev/console 2>/dev/null || true
    echo ${readyState} > /run/standin-state
  '';

  stage2 = pkgs.writeScript "stage-2-init" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin
    fail() { echo "stage 2: $1"; }
    ${resolveDevice}
    # As NixOS's stage 2: /run is a fresh tmpfs at every boot (kept, and
    # remounted, where the container's manager mounted one: nspawn, or LXC
    # with credentials in it), so nothing a previous boot left there is
    # read as this boot's; the system it runs is /run/current-system (the
    # toplevel whose init /boot/init is).
    mkdir -p /run
    if grep -q '^[^ ]* /run ' /proc/mounts; then
      mount -o remount,nosuid,nodev /run 2>/dev/null || true
    else
      mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "cannot mount /run"
    fi
    echo starting > /run/standin-state
    ln -sfn "$(dirname "$(readlink /boot/init)")" /run/current-system
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
    ${lib.optionalString agent ''
      # services.qemuGuest: the real qemu-ga on its virtio-serial port.
      for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = ${contract.agentPort} ] && port=/dev/''${p##*/}
      done
      if [ -n "''${port:-}" ]; then
        mkdir -p /run/qga
        ${ga}/bin/qemu-ga -m virtio-serial -p "$port" -t /run/qga &
      else
        echo "stage 2: no ${contract.agentPort} port"
      fi
    ''}
    echo "STANDIN-BOOTED name=${config.networking.hostName} version=${config.system.nixos.label}"
    # The system credentials where systemd would import them from: a VM's
    # fw_cfg files, or the directory a container's manager names. Only a
    # hash of each value is shown.
    for c in /sys/firmware/qemu_fw_cfg/by_name/${contract.credentialFwCfgPrefix}*/raw "''${CREDENTIALS_DIRECTORY:-/nonexistent}"/*; do
      [ -f "$c" ] || continue
      case "$c" in */raw) n=$(basename "$(dirname "$c")") ;; *) n=$(basename "$c") ;; esac
      echo "STANDIN-CREDENTIAL name=$n sha256=$(sha256sum < "$c" | cut -d' ' -f1)"
    done
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
    # What of the store it sees: how many paths, and a hash of their
    # sorted names.
    echo "STANDIN-STORE count=$(ls -A /nix/store | wc -l) sha256=$(ls -A /nix/store | LC_ALL=C sort | sha256sum | cut -d' ' -f1)"
    echo "STANDIN-STATE disks=$disks state-writable=$state var=''${var:-none} mem-kib=$mem"
    echo "STANDIN-CHECK store-writable=$store boot-writable=$boot store-writable-after-remount=$remount remount-rw=$remount_rw store-owner=$store_owner boot-owner=$boot_owner"
    echo "STANDIN-DONE"
    echo ${readyState} > /run/standin-state
    ${lib.optionalString (lib.elem "standin.stay" config.boot.kernelParams && !config.boot.isContainer) ''
      # A clean shutdown on ACPI's power button, as systemd-logind gives a
      # NixOS VM (libvirt's `shutdown`).
      mkdir -p /run/acpi/PWRF
      printf '#!${busybox}/bin/sh\necho STANDIN-STOPPING\npoweroff -f\n' > /run/acpi/PWRF/00000080
      chmod +x /run/acpi/PWRF/00000080
      acpid -f -c /run/acpi -l /dev/null -p /run/acpid.pid &
    ''}
    ${lib.optionalString (lib.elem "standin.stay" config.boot.kernelParams) ''
      # Keep running until asked to stop (LXC and nspawn send SIGRTMIN+3,
      # signal 37, to a container's init, as systemd expects; machinectl
      # poweroff SIGRTMIN+4), and answer on port 22.
      printf '#!${busybox}/bin/sh\necho STANDIN-HELLO name=${config.networking.hostName}\n' > /standin-hello
      chmod +x /standin-hello
      nc -ll -p 22 -e /standin-hello 2>/dev/null &
      trap 'echo STANDIN-STOPPING; exit 0' 37 38 PWR TERM INT
      ${lib.optionalString (lib.elem "standin.deaf" config.boot.kernelParams) "trap '' 37 38 PWR"}
      while true; do sleep 1; done
    ''}
    if [ -z "''${container:-}" ]; then sync; poweroff -f; fi
  '';

  failedAssertions = map (x: x.message) (lib.filter (x: !x.assertion) config.assertions);
  # NixOS's modules read system.stateVersion all over (and so warn when it
  # is not set); here the toplevel does.
  checked = if failedAssertions != [ ]
    then throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failedAssertions}"
    else v: lib.seq config.system.stateVersion (lib.showWarnings config.warnings v);
in
{
  config = {
    system.name = lib.mkDefault (if config.networking.hostName == "" then "unnamed" else config.networking.hostName);
    nix.package = lib.mkDefault pkgs.nix;
    system.build.toplevel = checked (pkgs.runCommand "nixos-system-${config.system.name}-${config.system.nixos.label}" { } ''
      mkdir -p $out/bin $out/sw
      ${if !config.system.standin.systemd then "ln -s ${stage2} $out/init"
        # As top-level.nix: under systemd stage 1, init is a copy of
        # systemd and prepare-root stage 2's script (copies, so that stage
        # 1 finds the system as the directory of what init= resolves to).
        else if config.boot.initrd.enable && config.boot.initrd.systemd.enable then ''
          cp ${config.systemd.package}/lib/systemd/systemd $out/init
          cp ${config.system.build.standinSystemdPrepareRoot} $out/prepare-root
        '' else "cp ${config.system.build.standinSystemdInit} $out/init"}
      ln -s ${pkgs.standinKernel} $out/kernel
      ln -s ${config.system.build.standinSystemdInitrd or initrd} $out/initrd
      echo -n ${q (lib.concatStringsSep " " config.boot.kernelParams)} > $out/kernel-params
      echo -n ${q label} > $out/nixos-version
      ln -s ${if config.system.standin.systemd then config.system.build.standinSystemdSwitch else switchToConfiguration} $out/bin/switch-to-configuration
      ln -s ${if config.system.standin.systemd then "${config.system.build.standinSystemdPath}/bin" else "${busybox}/bin"} $out/sw/bin
    '');
  };
}
