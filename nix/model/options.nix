# Declarations of the NixOS options Miniguest's modules read or set, with
# NixOS's own names, types and defaults (from nixpkgs' nixos/modules:
# tasks/filesystems.nix, system/boot/kernel.nix, system/boot/stage-1.nix,
# system/etc/etc.nix, config/users-groups.nix, tasks/network-interfaces.nix,
# misc/assertions.nix, system/activation/top-level.nix and systemd's unit
# options). Only what the modules touch is declared: a module that sets
# anything else fails here as it would not on NixOS, so the list is kept
# complete by the tests that evaluate the modules.
{ lib, config, options, pkgs, ... }:
let
  inherit (lib) mkOption types;
  utils = import ./utils.nix { inherit lib; };
  release = "26.11";

  # system/boot/kernel.nix: module sets, given as lists or as attribute
  # sets of booleans; the enabled names, sorted, are what reads them.
  attrNamesToTrue = types.coercedTo (types.listOf types.str)
    (enabled: lib.genAttrs enabled (_: true)) (types.attrsOf types.bool);
  moduleSet = mkOption {
    type = attrNamesToTrue;
    default = { };
    apply = mods: lib.attrNames (lib.filterAttrs (_: v: v) mods);
  };

  isNonEmpty = s: (builtins.match "[ \t\n]*" s) == null;
  nonEmptyStr = types.addCheck types.str isNonEmpty // { description = "non-empty string"; };
  nonEmptyWithoutTrailingSlash = types.addCheck types.str
    (s: isNonEmpty s && (builtins.match ".+/" s) == null);

  fileSystemOpts = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      mountPoint = mkOption { type = nonEmptyWithoutTrailingSlash; default = name; };
      device = mkOption { type = types.nullOr nonEmptyStr; default = null; };
      fsType = mkOption { type = nonEmptyStr; };
      options = mkOption { type = types.nonEmptyListOf nonEmptyStr; default = [ "defaults" ]; };
      depends = mkOption { type = types.listOf nonEmptyWithoutTrailingSlash; default = [ ]; };
      label = mkOption { type = types.nullOr nonEmptyStr; default = null; };
      autoFormat = mkOption { type = types.bool; default = false; };
      autoResize = mkOption { type = types.bool; default = false; };
      noCheck = mkOption { type = types.bool; default = false; };
      neededForBoot = mkOption { type = types.bool; default = false; };
    };
    config =
      let
        inInitrd = utils.fsNeededForBoot config;
        systemdStage1 = outer.boot.initrd.systemd.enable;
      in
      {
        device = lib.mkIf (lib.elem config.fsType [ "proc" "sysfs" "tmpfs" "ramfs" "devtmpfs" "devpts" ])
          (lib.mkDefault config.fsType);
        options = lib.mkMerge [
          (lib.mkIf config.autoResize [ "x-systemd.growfs" ])
          (lib.mkIf config.autoFormat [ "x-systemd.makefs" ])
          (lib.mkIf inInitrd [ "x-initrd.mount" ])
          # Scripted stage 1 orders `depends` by sorting the file systems;
          # systemd is told, under /sysroot for what stage 1 mounts.
          (lib.mkIf (config.depends != [ ] && (inInitrd -> systemdStage1))
            (map (d: "x-systemd.requires-mounts-for=${lib.optionalString inInitrd "/sysroot"}${d}") config.depends))
        ];
      };
  };
  outer = config;

  # systemd's unit options (nixos/lib/systemd-unit-options.nix) as the
  # modules use them: a unit option is a value or a list of them, lists
  # merging and single values having to agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    check = v: builtins.isString v || builtins.isInt v || builtins.isBool v || builtins.isPath v || builtins.isList v;
    merge = loc: defs:
      let defs' = lib.filterOverrides defs; in
      if lib.any (d: builtins.isList d.value) defs'
      then lib.concatMap (d: lib.toList d.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  unitSection = mkOption { type = types.attrsOf unitOption; default = { }; };
  # nixos/lib/systemd-lib.nix: what a dependency may name.
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  units = mkOption { type = types.listOf unitNameType; default = [ ]; };
  # systemd.services.<name> and boot.initrd.systemd.services.<name>: the
  # unit options the modules use.
  serviceOpts = { name, ... }: {
    options = {
      unitConfig = unitSection;
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.singleLineStr; default = ""; };
      wantedBy = units;
      requiredBy = units;
      after = units;
      before = units;
      wants = units;
      requires = units;
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      serviceConfig = unitSection;
      conflicts = units;
      script = mkOption { type = types.lines; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      preStop = mkOption { type = types.lines; default = ""; };
    };
  };

  subordinateUidRange = {
    options = {
      startUid = mkOption { type = types.int; };
      count = mkOption { type = types.int; default = 1; };
    };
  };
  subordinateGidRange = {
    options = {
      startGid = mkOption { type = types.int; };
      count = mkOption { type = types.int; default = 1; };
    };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
    };

    boot = {
      kernelParams = mkOption {
        type = types.listOf (types.strMatching ''([^"[:space:]]|"[^"]*")+'' // {
          name = "kernelParam";
          description = "string, with spaces inside double quotes";
        });
        default = [ ];
      };
      kernelModules = moduleSet;
      isContainer = mkOption { type = types.bool; default = false; };
      postBootCommands = mkOption { type = types.lines; default = ""; };
      loader.grub.enable = mkOption { type = types.bool; default = true; };
      initrd = {
        availableKernelModules = moduleSet;
        kernelModules = moduleSet;
        # NixOS 26.05 made systemd stage 1 the default.
        systemd.enable = mkOption { type = types.bool; default = true; };
        systemd.services = mkOption {
          type = types.attrsOf (types.submodule serviceOpts);
          default = { };
        };
        systemd.package = mkOption { type = types.package; default = config.systemd.package; };
        systemd.additionalUpstreamUnits = mkOption { type = types.listOf types.str; default = [ ]; };
        systemd.suppressedUnits = mkOption { type = types.listOf types.str; default = [ ]; };
        enable = mkOption { type = types.bool; default = !config.boot.isContainer; };
      };
    };

    fileSystems = mkOption {
      type = types.attrsOf (types.submodule fileSystemOpts);
      default = { };
      apply = lib.filterAttrs (_: fs: fs.enable);
    };

    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
    };

    environment = {
      systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      etc = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, config, ... }: {
          options = {
            enable = mkOption { type = types.bool; default = true; };
            target = mkOption { type = types.str; default = name; };
            text = mkOption { type = types.nullOr types.lines; default = null; };
            source = mkOption { type = types.path; };
            mode = mkOption { type = types.str; default = "symlink"; };
          };
          config.source = lib.mkIf (config.text != null)
            (lib.mkDefault (pkgs.writeText "etc-${baseNameOf name}" config.text));
        }));
      };
    };

    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceOpts);
      default = { };
    };

    users.users = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, config, ... }: {
        options = {
          name = mkOption { type = types.str; default = name; };
          description = mkOption { type = types.str; default = ""; };
          uid = mkOption { type = types.nullOr types.int; default = null; };
          isSystemUser = mkOption { type = types.bool; default = false; };
          isNormalUser = mkOption { type = types.bool; default = false; };
          group = mkOption { type = types.str; default = ""; };
          extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
          home = mkOption { type = types.path; default = "/var/empty"; };
          hashedPassword = mkOption { type = types.nullOr types.str; default = null; };
          createHome = mkOption { type = types.bool; default = false; };
          homeMode = mkOption { type = types.strMatching "[0-7]{1,5}"; default = "700"; };
          subUidRanges = mkOption { type = types.listOf (types.submodule subordinateUidRange); default = [ ]; };
          subGidRanges = mkOption { type = types.listOf (types.submodule subordinateGidRange); default = [ ]; };
          autoSubUidGidRange = mkOption { type = types.bool; default = false; };
        };
        # users-groups.nix: what a normal user gets.
        config = lib.mkIf config.isNormalUser {
          group = lib.mkDefault "users";
          home = lib.mkDefault "/home/${config.name}";
          createHome = lib.mkDefault true;
        };
      }));
    };

    users.groups = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          name = mkOption { type = types.str; default = name; };
          gid = mkOption { type = types.nullOr types.int; default = null; };
          members = mkOption { type = types.listOf types.str; default = [ ]; };
        };
      }));
    };

    nix.package = mkOption { type = types.package; };
    services.getty.autologinUser = mkOption { type = types.nullOr types.str; default = null; };
    # nixos/modules/security/default.nix
    security.lsm = mkOption { type = types.listOf types.str; default = [ ]; };
    # nixos/modules/misc/nixpkgs-flake.nix (lib.nixosSystem sets it from
    # the flake).
    nixpkgs.flake.source = mkOption {
      type = types.nullOr (types.either types.str types.path);
      default = null;
    };

    system = {
      build = mkOption {
        default = { };
        type = types.submoduleWith {
          modules = [{ freeformType = with types; lazyAttrsOf (uniq unspecified); }];
        };
      };
      name = mkOption { type = types.str; };
      # nixos/modules/system/activation/nixos-init.nix
      nixos-init.enable = lib.mkEnableOption "nixos-init, a system for bashless initialization";
      # NixOS: listOf pathInStore, whose check needs a newer Nix than these
      # machines' 2.8 (builtins.addDrvOutputDependencies).
      extraDependencies = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      stateVersion = mkOption {
        type = types.str;
        default = release;
        # As nixos/modules/misc/version.nix warns.
        apply = v: lib.warnIf (options.system.stateVersion.highestPrio == (lib.mkOptionDefault { }).priority)
          "system.stateVersion is not set, defaulting to ${v}. Read why this matters on https://nixos.org/manual/nixos/stable/options.html#opt-system.stateVersion."
          v;
      };
      nixos.label = mkOption {
        type = types.strMatching "[a-zA-Z0-9:_\\.-]*";
        default = release;
      };
    };
  };

  config = {
    _module.args.utils = utils;
    # Both stage 1s assert a root file system (system/boot/stage-1.nix for
    # the scripted one, systemd/initrd.nix for systemd's).
    assertions = lib.optional config.boot.initrd.enable {
      assertion = lib.any (fs: fs.mountPoint == "/") (lib.attrValues config.fileSystems);
      message = "The ‘fileSystems’ option does not specify your root file system.";
    }
    # nixos/modules/system/activation/nixos-init.nix
    ++ lib.optionals config.system.nixos-init.enable [
      {
        assertion = config.boot.initrd.systemd.enable;
        message = "nixos-init can only be used with boot.initrd.systemd.enable";
      }
      {
        assertion = config.boot.postBootCommands == "";
        message = "nixos-init cannot be used with boot.postBootCommands";
      }
    ];
    warnings = lib.optional (config.boot.initrd.enable && !config.boot.initrd.systemd.enable) ''
      Scripted initrd is deprecated and scheduled for removal in 26.11. See the NixOS 26.05 release notes.
    '';
    # system/boot/kernel.nix (boot.consoleLogLevel's default) and, under
    # systemd stage 1, systemd/initrd.nix (boot.initrd.systemd.root's).
    boot.kernelParams = lib.mkMerge [
      (lib.mkIf (!config.boot.isContainer) (
        [ "loglevel=4" ] ++ lib.optional config.boot.initrd.systemd.enable "root=fstab"))
      # security/default.nix
      (lib.mkIf (config.security.lsm != [ ]) [ "lsm=${lib.concatStringsSep "," config.security.lsm}" ])
    ];
    security.lsm = lib.mkMerge [ [ "landlock" "yama" ] (lib.mkAfter [ "bpf" ]) ];

    # systemd/initrd.nix: the unit that finds the system to activate from
    # init= once the store is mounted.
    boot.initrd.systemd.services.initrd-find-nixos-closure =
      lib.mkIf (config.boot.initrd.enable && config.boot.initrd.systemd.enable && !config.system.nixos-init.enable) {
        description = "Find NixOS closure";
        unitConfig = {
          RequiresMountsFor = "/sysroot/nix/store";
          DefaultDependencies = false;
        };
        before = [ "initrd.target" "shutdown.target" ];
        conflicts = [ "shutdown.target" ];
        requiredBy = [ "initrd.target" ];
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        # The system is the directory of init=, resolved under /sysroot; one
        # without prepare-root is handed init= itself, not activated.
        script = ''
          closure=
          for o in $(cat /proc/cmdline); do
            case "$o" in init=*) init=''${o#init=}; closure=$init ;; esac
          done
          if [ -z "$closure" ]; then
            echo 'No init= parameter on the kernel command line' >&2
            exit 1
          fi
          # Links resolve inside /sysroot, never into the initrd.
          n=0
          while [ -L "/sysroot$closure" ] && [ "$n" -lt 40 ]; do
            t=$(readlink "/sysroot$closure")
            case "$t" in /*) closure=$t ;; *) closure=$(dirname "$closure")/$t ;; esac
            n=$((n + 1))
          done
          closure=$(dirname "$closure")
          ln -s "$closure" /nixos-closure
          if ! [ -x "/sysroot$(readlink "/sysroot$closure/prepare-root" || echo "$closure/prepare-root")" ]; then
            echo "NEW_INIT=$init" > /etc/switch-root.conf
            echo "$closure does not look like a NixOS installation - not activating"
            exit 0
          fi
          echo 'NEW_INIT=' > /etc/switch-root.conf
        '';
      };
    boot.initrd.systemd.services.initrd-nixos-activation =
      lib.mkIf (config.boot.initrd.enable && config.boot.initrd.systemd.enable && !config.system.nixos-init.enable) {
        description = "NixOS Activation";
        after = [ "initrd-switch-root.target" ];
        requiredBy = [ "initrd-switch-root.service" ];
        before = [ "initrd-switch-root.service" ];
        unitConfig = {
          DefaultDependencies = false;
          AssertPathExists = "/etc/initrd-release";
          RequiresMountsFor = [ "/sysroot/run" ];
        };
        serviceConfig = { Type = "oneshot"; EnvironmentFile = "-/etc/switch-root.conf"; };
        script = ''
          if [ -n "''${NEW_INIT:-}" ]; then
            echo "$NEW_INIT is not a NixOS system - not activating"
            exit 0
          fi
          export IN_NIXOS_SYSTEMD_STAGE1=true
          exec chroot /sysroot "$(readlink /nixos-closure)/prepare-root"
        '';
      };
    # systemctl is told the new init, or an empty one for systemd's own.
    boot.initrd.systemd.services.initrd-switch-root =
      lib.mkIf (config.boot.initrd.enable && config.boot.initrd.systemd.enable && !config.system.nixos-init.enable) {
        serviceConfig = {
          EnvironmentFile = "-/etc/switch-root.conf";
          ExecStart = [ "" ''systemctl --no-block switch-root /sysroot "''${NEW_INIT}"'' ];
        };
      };
  };
}
