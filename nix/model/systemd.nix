# systemd as NixOS sets it up (nixos/modules/system/boot/systemd.nix and
# the journald and tmpfiles modules), for the systemd stand-in: the
# upstream units NixOS enables, linked from systemd's package into
# /etc/systemd/system with the `.wants` of the targets it takes over, the
# units the configuration declares (`systemd.services`), written as NixOS's
# systemd-lib writes them, and `systemd.suppressedSystemUnits` left out.
# The package is Debian's systemd (see pkgs.nix), so what the real
# program makes of these units is what the tests see.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.systemd;
  busybox = pkgs.busybox;

  # systemd.nix's upstreamSystemUnits, for a package built as Debian
  # builds it (no utmp, no cryptsetup targets in a container), adjusted as
  # container-config.nix and systemd.nix do for boot.isContainer.
  upstreamSystemUnits = [
    "basic.target" "sysinit.target" "sockets.target" "exit.target" "graphical.target"
    "multi-user.target" "network.target" "network-pre.target" "network-online.target"
    "nss-lookup.target" "nss-user-lookup.target" "time-set.target" "time-sync.target"
    "first-boot-complete.target" "sigpwr.target" "timers.target" "paths.target" "rpcbind.target"
    "rescue.target" "rescue.service" "debug-shell.service"
    "systemd-udevd-control.socket" "systemd-udevd-kernel.socket" "systemd-udevd-varlink.socket"
    "systemd-udevd.service"
  ] ++ lib.optional (!config.boot.isContainer) "systemd-udev-trigger.service" ++ [
    "sound.target" "bluetooth.target" "printer.target" "smartcard.target"
    "systemd-modules-load.service" "kmod-static-nodes.service" "modprobe@.service"
    "systemd-fsck@.service" "systemd-fsck-root.service" "systemd-growfs@.service"
    "systemd-growfs-root.service" "systemd-remount-fs.service" "systemd-pstore.service"
    "local-fs.target" "local-fs-pre.target" "remote-fs.target" "remote-fs-pre.target"
    "swap.target" "dev-hugepages.mount" "dev-mqueue.mount" "sys-fs-fuse-connections.mount"
  ] ++ lib.optional (!config.boot.isContainer) "sys-kernel-config.mount" ++ [
    "sys-kernel-debug.mount" "sys-kernel-tracing.mount" "systemd-random-seed.service"
    "systemd-backlight@.service" "systemd-rfkill.service" "systemd-rfkill.socket"
    "boot-complete.target" "hibernate.target" "suspend.target" "suspend-then-hibernate.target"
    "sleep.target" "hybrid-sleep.target" "systemd-hibernate.service" "systemd-hybrid-sleep.service"
    "systemd-suspend.service" "systemd-suspend-then-hibernate.service"
    "reboot.target" "systemd-reboot.service" "poweroff.target" "systemd-poweroff.service"
    "halt.target" "systemd-halt.service" "shutdown.target" "umount.target" "final.target"
    "kexec.target" "systemd-kexec.service" "soft-reboot.target" "systemd-soft-reboot.service"
    "systemd-ask-password-console.path" "systemd-ask-password-console.service"
    "systemd-ask-password-wall.path" "systemd-ask-password-wall.service"
    "systemd-ask-password@.service" "systemd-ask-password.socket"
    "systemd-creds@.service" "systemd-creds.socket"
    "slices.target" "systemd-sysctl.service" "systemd-machine-id-commit.service"
    "systemd-exit.service" "systemd-update-done.service"
    "systemd-initctl.socket" "systemd-initctl.service"
    "container-getty@.service" "console-getty.service" "getty.target" "getty-pre.target"
    "serial-getty@.service" "getty@.service"
  ];
  upstreamSystemWants = [
    "sysinit.target.wants" "sockets.target.wants" "local-fs.target.wants"
    "multi-user.target.wants" "timers.target.wants"
  ];

  unitLib = import ./systemd-lib.nix { inherit lib pkgs; };
  serviceUnit = unitLib.serviceUnit { systemd = cfg.package; };
  declared = lib.filterAttrs (_: s: s.enable) config.systemd.services;

  # users-groups.nix's accounts: root, nobody and the declared users, a
  # normal user without a uid given the first free one from 1000 and a
  # system user the first free one down from 999 (in name order, as
  # update-users-groups.pl allocates them), each in its group and, in
  # /etc/group, in its extra groups; the groups of
  # nixos/modules/misc/ids.nix that systemd's units and tmpfiles name, and
  # the declared ones (without a gid: down from 999). No password unless
  # one is declared.
  declaredGroups = lib.filter (g: !(config.ids.gids ? ${g.name})) (lib.attrValues config.users.groups);
  unnumberedGroups = lib.filter (g: g.gid == null) declaredGroups;
  gids = config.ids.gids // lib.listToAttrs (map (g: lib.nameValuePair g.name
    (if g.gid != null then g.gid else 999 - lib.lists.findFirstIndex (o: o.name == g.name) 0 unnumberedGroups))
    declaredGroups);
  declaredUsers = lib.filter (u: u.name != "root" && u.name != "nobody")
    (lib.attrValues config.users.users);
  unnumbered = lib.filter (u: u.isNormalUser && u.uid == null) declaredUsers;
  unnumberedSystem = lib.filter (u: u.isSystemUser && u.uid == null) declaredUsers;
  uidOf = u: if u.uid != null then u.uid
    else if u.isNormalUser then 1000 + lib.lists.findFirstIndex (o: o.name == u.name) 0 unnumbered
    else if u.isSystemUser then 999 - lib.lists.findFirstIndex (o: o.name == u.name) 0 unnumberedSystem
    else throw "users.users.${u.name}: exactly one of isSystemUser and isNormalUser must be set";
  gidOf = u: gids.${u.group} or (throw "users.users.${u.name}.group: the systemd stand-in knows no group ${u.group}");
  accounts = [
    { name = "root"; uid = 0; gid = 0; description = "System administrator"; home = "/root"; shell = "/run/current-system/sw/bin/sh"; hash = "!"; }
    { name = "nobody"; uid = 65534; gid = 65534; description = "Unprivileged account (don't use!)"; home = "/var/empty"; shell = "/run/current-system/sw/bin/nologin"; hash = "!"; }
  ] ++ map (u: {
    inherit (u) name description home;
    uid = uidOf u;
    gid = gidOf u;
    shell = "/run/current-system/sw/bin/sh";
    hash = if u.hashedPassword != null then u.hashedPassword else "!";
  }) declaredUsers;
  members = group: lib.concatStringsSep "," (map (u: u.name)
    (lib.filter (u: lib.elem group u.extraGroups) declaredUsers));

  # environment.etc, as nixos/modules/system/etc/etc.nix builds
  # /etc/static: a link per entry, and the entries with a mode copied
  # into /etc by stage 2 (listed in .copies).
  etcEntries = lib.filter (e: e.enable) (lib.attrValues config.environment.etc);

  # What NixOS's activation puts in /etc that systemd and the rest read:
  # os-release, the accounts, the host name and its address, systemd's
  # units and generators, udev's rules, and environment.etc.
  etc = pkgs.runCommand "etc" {
    osRelease = ''
      NAME=NixOS
      ID=nixos
      VERSION_ID="${config.system.nixos.label}"
      PRETTY_NAME="NixOS ${config.system.nixos.label} (Miniguest systemd stand-in)"
    '';
    passwd = lib.concatMapStrings (a: "${a.name}:x:${toString a.uid}:${toString a.gid}:${a.description}:${a.home}:${a.shell}\n") accounts;
    shadow = lib.concatMapStrings (a: "${a.name}:${a.hash}:1::::::\n") accounts;
    group = lib.concatStrings (lib.mapAttrsToList (g: gid: "${g}:x:${toString gid}:${members g}\n") gids);
    # nsswitch.nix, less systemd's NSS modules, which the stand-in lacks.
    nsswitch = ''
      passwd: files
      group: files
      shadow: files
      hosts: files dns
    '';
    hosts = ''
      127.0.0.1 localhost
      ::1 localhost
      127.0.0.2 ${config.networking.hostName}
    '';
    entries = lib.concatMapStrings (e: "${e.target} ${e.source} ${e.mode}\n") etcEntries;
    passAsFile = [ "osRelease" "passwd" "shadow" "group" "nsswitch" "hosts" "entries" ];
  } ''
    mkdir -p $out
    cp "$osReleasePath" $out/os-release
    cp "$passwdPath" $out/passwd
    cp "$shadowPath" $out/shadow
    cp "$groupPath" $out/group
    cp "$hostsPath" $out/hosts
    cp "$nsswitchPath" $out/nsswitch.conf
    echo ${lib.escapeShellArg config.networking.hostName} > $out/hostname
    ln -s ${config.system.build.etcSystemd} $out/systemd
    ln -s ${udevRules} $out/udev
    echo "0600 shadow" > $out/.copies
    while read -r target source mode; do
      [ -n "$target" ] || continue
      mkdir -p "$out/$(dirname "$target")"
      ln -s "$source" "$out/$target"
      [ "$mode" = symlink ] || echo "$mode $target" >> $out/.copies
    done < "$entriesPath"
  '';

  # nixos/modules/services/hardware/udev.nix: /etc/udev/rules.d holds the
  # rules of udev's package and, last, services.udev.extraRules.
  udevRules = pkgs.runCommand "etc-udev" { extraRules = config.services.udev.extraRules; passAsFile = [ "extraRules" ]; } ''
    mkdir -p $out/rules.d
    for r in ${cfg.package}/lib/udev/rules.d/*; do ln -s "$r" $out/rules.d/; done
    cp "$extraRulesPath" $out/rules.d/99-local.rules
  '';

  # /etc from /etc/static, as setup-etc.pl leaves it: a link for each
  # entry into /etc/static, in real directories, copies of those with a
  # mode, and no link left that leads nowhere in /etc/static.
  etcActivation = ''
    (cd /etc/static/ && find . -mindepth 1 ! -type d -o -type l) | while read -r f; do
      f=''${f#./}
      [ "$f" != .copies ] || continue
      mkdir -p "/etc/$(dirname "$f")"
      [ ! -d "/etc/$f" ] || [ -L "/etc/$f" ] || rm -rf "/etc/$f"
      ln -sfn "/etc/static/$f" "/etc/$f"
    done
    find /etc -type l | while read -r l; do
      case "$(readlink "$l")" in /etc/static/*) [ -e "$l" ] || rm -f "$l" ;; esac
    done
    while read -r mode target; do
      rm -f "/etc/$target"
      cp "/etc/static/$target" "/etc/$target"
      chmod "$mode" "/etc/$target"
    done < /etc/static/.copies
  '';

  # security.wrappers, as NixOS's suid-sgid-wrappers unit makes them: a
  # tmpfs of their own at /run/wrappers (/run itself is nosuid), and each
  # program there with its owner, group and mode. NixOS's wrapper is a
  # small program that runs the store's; here the wrapper is a copy of the
  # program itself.
  wrappers = lib.optionalString (config.security.wrappers != { }) (''
    mkdir -p /run/wrappers
    mount -t tmpfs -o nodev,mode=755 wrappers /run/wrappers
    mkdir -p /run/wrappers/bin
  '' + lib.concatStrings (lib.mapAttrsToList (name: w: ''
    cp ${w.source} /run/wrappers/bin/${name}
    chown ${w.owner}:${w.group} /run/wrappers/bin/${name}
    chmod u-s,g-s,a-rwx,${w.permissions}${lib.optionalString w.setuid ",u+s"}${lib.optionalString w.setgid ",g+s"} /run/wrappers/bin/${name}
  '') config.security.wrappers));

  # What NixOS's activation leaves before systemd starts, for Debian's
  # systemd: /run/current-system (the toplevel in $system), /etc as
  # activation makes it, the wrappers, and, since Debian built systemd
  # for /usr, its compiled-in paths leading into the package, all but its
  # unit and generator directories: the units are NixOS's, in
  # /etc/systemd.
  activation = ''
    mkdir -p /run /tmp /etc /var /root /usr/bin /usr/lib/systemd
    chmod 1777 /tmp
    ln -sfn "$system" /run/current-system
    ln -sfn ${etc} /etc/static
    ${etcActivation}
    ${wrappers}
    ${lib.concatMapStrings (u: lib.optionalString u.createHome ''
      # update-users-groups.pl: a home made once, the user's, with its mode.
      if ! [ -e ${lib.escapeShellArg u.home} ]; then
        mkdir -p ${lib.escapeShellArg u.home}
        chown ${toString (uidOf u)}:${toString (gidOf u)} ${lib.escapeShellArg u.home}
        chmod ${u.homeMode} ${lib.escapeShellArg u.home}
      fi
    '') declaredUsers}
    ${lib.concatStrings (lib.attrValues config.system.activationScripts)}
    [ -e /etc/machine-id ] || : > /etc/machine-id
    for e in ${cfg.package}/lib/systemd/*; do
      case "''${e##*/}" in
        system|system-generators|system-preset|user|user-generators|user-preset|network) ;;
        *) ln -sfn "$e" /usr/lib/systemd/ ;;
      esac
    done
    # udev's helpers where rules name them; its rules are NixOS's, in /etc.
    mkdir -p /usr/lib/udev
    for e in ${cfg.package}/lib/udev/*; do
      case "''${e##*/}" in
        rules.d|hwdb.d) ;;
        *) ln -sfn "$e" /usr/lib/udev/ ;;
      esac
    done
    rm -rf /usr/bin
    mkdir -p /usr/bin
    for b in ${cfg.package}/bin/* ${pkgs.util-linux}/bin/* ${busybox}/bin/*; do
      [ -e "/usr/bin/''${b##*/}" ] || ln -s "$b" /usr/bin/
    done
    ${lib.optionalString (!config.boot.isContainer) ''
      # The kernel's modules, for udev and systemd's own loading, as NixOS's
      # /run/booted-system/kernel-modules gives them.
      [ -e /lib/modules ] || { mkdir -p /lib; ln -s ${pkgs.standinModules} /lib/modules; }
    ''}
    ${lib.optionalString config.security.sudo.enable ''
      mkdir -p /usr/libexec
      ln -sfn ${config.security.sudo.package}/libexec/sudo /usr/libexec/sudo
    ''}
    mkdir -p /usr/sbin
    ln -sfn /run/wrappers/bin/unix_chkpwd /usr/sbin/unix_chkpwd
    [ -e /bin ] || ln -s usr/bin /bin
    [ -e /sbin ] || ln -s usr/bin /sbin
  '';

  # NixOS's stage 2 init, where no systemd stage 1 ran (containers, and a
  # VM with the scripted one): the kernel's file systems where no
  # container manager gave them, a fresh /run, activation, then systemd
  # as PID 1.
  init = pkgs.writeScript "stage-2-init-systemd" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin
    mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }
    mkdir -p /proc /sys /dev /run
    mounted /proc || mount -t proc proc /proc
    mounted /sys || mount -t sysfs sysfs /sys
    mounted /dev || mount -t devtmpfs devtmpfs /dev
    if mounted /run; then
      mount -o remount,nosuid,nodev /run
    else
      mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
    fi
    system=$(dirname "$(readlink /boot/init)")
    ${activation}
    exec ${cfg.package}/lib/systemd/systemd "$@"
  '';

  # The toplevel's prepare-root, which systemd stage 1's
  # initrd-nixos-activation runs chrooted into /sysroot before switching
  # root to systemd itself (at its compiled-in path, linked above).
  prepareRoot = pkgs.writeScript "prepare-root" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin
    system=$(dirname "$0")
    ${activation}
  '';

  # switch-to-configuration, as NixOS's does it for a unit change: the new
  # /etc, the manager reloaded, then the units multi-user.target wants
  # started if new, restarted if changed, stopped (and forgotten, if they
  # had failed) if gone. Like NixOS's, it exits 4 when a unit failed.
  switch = pkgs.writeScript "switch-to-configuration" ''
    #!${busybox}/bin/sh
    export PATH=${busybox}/bin:${cfg.package}/bin
    case "$1" in switch|test) ;; *) echo "usage: $0 switch|test" >&2; exit 1 ;; esac
    toplevel=$(dirname "$(dirname "$0")")
    old=$(readlink -f /etc/static)
    new=${etc}
    wants() { ls "$1/systemd/system/multi-user.target.wants" 2>/dev/null; }
    ln -sfn "$new" /etc/static
    ${etcActivation}
    ln -sfn "$toplevel" /run/current-system
    systemctl daemon-reload
    rc=0
    for u in $(wants "$old"); do
      wants "$new" | grep -qx "$u" && continue
      systemctl stop "$u" || rc=4
      systemctl reset-failed "$u" 2>/dev/null || true
    done
    for u in $(wants "$new"); do
      if ! wants "$old" | grep -qx "$u"; then
        systemctl start "$u" || rc=4
      elif [ "$(readlink -f "$old/systemd/system/$u")" != "$(readlink -f "$new/systemd/system/$u")" ]; then
        systemctl restart "$u" || rc=4
      fi
    done
    exit $rc
  '';
in
{
  options = {
    # nixos/modules/misc/ids.nix: the groups systemd's units, tmpfiles and
    # udev rules name.
    ids.gids = mkOption { type = types.attrsOf types.int; internal = true; };
    systemd.package = mkOption { type = types.package; default = pkgs.systemd; };
    systemd.additionalUpstreamSystemUnits = mkOption { type = types.listOf types.str; default = [ ]; };
    systemd.suppressedSystemUnits = mkOption { type = types.listOf types.str; default = [ ]; };
    # Targets as far as the modules use them: what wants them.
    systemd.targets = mkOption {
      default = { };
      type = types.attrsOf (types.submodule { options.wantedBy = mkOption { type = types.listOf types.str; default = [ ]; }; });
    };
    # nixos/modules/system/activation/activation-script.nix, as plain
    # snippets run in name order once /etc is in place.
    system.activationScripts = mkOption { type = types.attrsOf types.lines; default = { }; };
    services.udev.extraRules = mkOption { type = types.lines; default = ""; };
    # The model's own switch: the stand-in's stage 2 runs this systemd as
    # PID 1, rather than the busybox script that reports and stops.
    system.standin.systemd = mkOption { type = types.bool; default = false; internal = true; };
  };

  config = {
    ids.gids = {
      root = 0; wheel = 1; kmem = 2; tty = 3; messagebus = 4; disk = 6; audio = 17; floppy = 18;
      uucp = 19; lp = 20; cdrom = 24; tape = 25; video = 26; dialout = 27; utmp = 29;
      systemd-journal = 62; keys = 96; users = 100; input = 174; kvm = 302; render = 303;
      sgx = 304; nogroup = 65534;
    };
    systemd.additionalUpstreamSystemUnits = [
      # journald.nix
      "systemd-journald.socket" "systemd-journald@.socket" "systemd-journald-varlink@.socket"
      "systemd-journald.service" "systemd-journald@.service" "systemd-journal-flush.service"
      "systemd-journal-catalog-update.service" "systemd-journald-sync@.service"
      "systemd-journald-audit.socket" "systemd-journald-dev-log.socket"
      "systemd-journalctl.socket" "systemd-journalctl@.service"
      # tmpfiles.nix
      "systemd-tmpfiles-clean.service" "systemd-tmpfiles-clean.timer"
      "systemd-tmpfiles-setup-dev-early.service" "systemd-tmpfiles-setup-dev.service"
      "systemd-tmpfiles-setup.service"
    ];

    system.build.standinSystemdInit = init;
    system.build.standinSystemdSwitch = switch;
    system.build.standinSystemdPrepareRoot = prepareRoot;
    # The system's programs, as environment.systemPackages gathers them.
    system.build.standinSystemdPath = pkgs.runCommand "system-path" { } ''
      mkdir -p $out/bin
      for b in ${cfg.package}/bin/* ${pkgs.util-linux}/bin/* ${config.nix.package}/bin/* ${busybox}/bin/*; do
        [ -e "$out/bin/''${b##*/}" ] || ln -s "$b" $out/bin/
      done
    '';

    system.build.etcSystemd = pkgs.runCommand "etc-systemd" {
      units = lib.subtractLists cfg.suppressedSystemUnits (upstreamSystemUnits ++ cfg.additionalUpstreamSystemUnits);
      wantsDirs = upstreamSystemWants;
      declared = lib.concatStrings (lib.mapAttrsToList (name: svc: "${name}.service ${serviceUnit name svc}\n") declared);
      wanted = lib.concatStrings (lib.mapAttrsToList
        (name: svc: lib.concatMapStrings (t: "${t}.wants ${name}.service\n") svc.wantedBy
          + lib.concatMapStrings (t: "${t}.requires ${name}.service\n") svc.requiredBy)
        declared
        ++ lib.mapAttrsToList (name: t: lib.concatMapStrings (w: "${w}.wants ${name}.target\n") t.wantedBy)
          cfg.targets);
    } ''
      up=${cfg.package}/lib/systemd/system
      out_units=$out/system
      mkdir -p $out_units
      for u in $units; do
        if [ -e "$up/$u" ]; then ln -s "$up/$u" "$out_units/$u"; fi
      done
      # The targets' own wants, for what is enabled.
      for w in $wantsDirs; do
        [ -d "$up/$w" ] || continue
        mkdir -p "$out_units/$w"
        for e in "$up/$w"/*; do
          n=$(basename "$e")
          if [ -e "$out_units/$n" ] || [ -e "$out_units/''${n%%@*}@.''${n##*.}" ]; then ln -s "$up/$w/$n" "$out_units/$w/$n"; fi
        done
      done
      printf '%s' "$declared" | while read -r name file; do
        [ -n "$name" ] || continue
        ln -sfn "$file" "$out_units/$name"
      done
      printf '%s' "$wanted" | while read -r dir name; do
        [ -n "$dir" ] || continue
        mkdir -p "$out_units/$dir"
        ln -sfn "../$name" "$out_units/$dir/$name"
      done
      ln -s multi-user.target "$out_units/default.target"
      mkdir -p $out/system-generators
      for g in ${cfg.package}/lib/systemd/system-generators/*; do
        case "$(basename "$g")" in
          systemd-sysv-generator|systemd-rc-local-generator) ;;
          *) ln -s "$g" "$out/system-generators/" ;;
        esac
      done
    '';
  };
}
