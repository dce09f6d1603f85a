# The module a guest configuration imports: builds it into a Miniguest
# guest output (see docs/contract.md) instead of a bootable disk.
{ config, lib, pkgs, ... }:
let
  contract = import ../lib/contract.nix;
  inherit (contract) layout;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types;
  cfg = config.boot.miniguest;
  isVm = cfg.guestType == "qemu";
  fs = cfg.qemu.fsType;

  userGaveInit = lib.any (p: lib.hasPrefix "init=" p) config.boot.kernelParams;
  manifest = contract.mkManifest {
    inherit (cfg) guestType memoryMiB vcpus interfaces;
    qemu.fsType = fs;
    # With direct kernel boot the hypervisor passes these; stage 1 then runs
    # the guest's stage 2 from the boot share.
    kernelParams = config.boot.kernelParams
      ++ lib.optional (!userGaveInit) "init=/${layout.init}";
    volumes = lib.mapAttrs (_: v: { inherit (v) mountPoint sizeMiB; }) cfg.volumes;
    shares = lib.mapAttrs (_: s: { inherit (s) source mountPoint readOnly; }) cfg.shares;
  };

  closureInfo = pkgs.closureInfo { rootPaths = [ config.system.build.toplevel ]; };

  shareFileSystem = tag: readOnly: {
    device = tag;
    fsType = fs;
    options = contract.mountOptions.${fs} ++ lib.optional readOnly "ro";
  };
in
{
  options.boot.miniguest = {
    enable = mkEnableOption "building this configuration as a Miniguest guest";

    guestType = mkOption {
      type = types.enum contract.guestTypes;
      default = contract.defaults.guestType;
      description = "`qemu` for a VM booted by direct kernel boot, `lxc` for a container.";
    };

    qemu.fsType = mkOption {
      type = types.enum contract.storeFsTypes;
      default = contract.defaults.storeFs;
      description = "How VM guests receive the host's store and their boot directory.";
    };

    memoryMiB = mkOption {
      type = types.ints.positive;
      default = contract.defaults.memoryMiB;
      description = "Memory given to a VM guest, in MiB.";
    };

    vcpus = mkOption {
      type = types.ints.positive;
      default = contract.defaults.vcpus;
      description = "Virtual CPUs given to a VM guest.";
    };

    volumes = mkOption {
      default = { };
      description = ''
        Writable storage the hypervisor provides. VM guests get a block
        device formatted on first boot; containers get a host directory.
        A guest with no volumes and no writable shares is stateless.
      '';
      type = types.attrsOf (types.submodule {
        options = {
          mountPoint = mkOption { type = types.str; };
          sizeMiB = mkOption { type = types.ints.positive; default = 1024; };
          fsType = mkOption { type = types.str; default = "ext4"; };
        };
      });
    };

    shares = mkOption {
      default = { };
      description = "Host directories passed through to the guest, by tag.";
      type = types.attrsOf (types.submodule {
        options = {
          source = mkOption { type = types.str; description = "Absolute path on the host."; };
          mountPoint = mkOption { type = types.str; };
          readOnly = mkOption { type = types.bool; default = false; };
        };
      });
    };

    interfaces = mkOption {
      default = [ ];
      description = "Network interfaces; none means no network.";
      type = types.listOf (types.submodule {
        options = {
          type = mkOption { type = types.enum contract.interfaceTypes; };
          source = mkOption { type = types.nullOr types.str; default = null; };
          mac = mkOption { type = types.nullOr types.str; default = null; };
        };
      });
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      system.build.miniguest = pkgs.runCommand "miniguest-${config.system.name}-${config.system.nixos.label}"
        {
          init = "${config.system.build.toplevel}/init";
          registration = "${closureInfo}/registration";
          manifestFile = pkgs.writeText layout.manifest (builtins.toJSON manifest);
          kernel = lib.optionalString isVm "${config.system.build.toplevel}/kernel";
          initrd = lib.optionalString isVm "${config.system.build.toplevel}/initrd";
        }
        contract.assemble;

      # No bootloader: the hypervisor loads the kernel, or runs /boot/init.
      boot.loader.grub.enable = false;

      # The guest's Nix database learns its closure from the boot share.
      boot.postBootCommands = ''
        if [ -f /${layout.registration} ]; then
          ${config.nix.package.out}/bin/nix-store --load-db < /${layout.registration}
        fi
        ${config.nix.package.out}/bin/nix-env -p /nix/var/nix/profiles/system --set /run/current-system
      '';
    }

    (mkIf isVm {
      boot.initrd.availableKernelModules = contract.initrdModules.${fs};
      boot.initrd.kernelModules = contract.initrdModules.${fs};
      boot.kernelParams = [ "console=ttyS0" ];

      fileSystems = {
        "/nix/store" = shareFileSystem layout.storeTag true // { neededForBoot = true; };
        "/boot" = shareFileSystem layout.bootTag true // { neededForBoot = true; };
      }
      // lib.mapAttrs' (name: v: lib.nameValuePair v.mountPoint {
        device = contract.volumeDevice name;
        inherit (v) fsType;
        autoFormat = true;
      }) cfg.volumes
      // lib.mapAttrs' (tag: s: lib.nameValuePair s.mountPoint (shareFileSystem tag s.readOnly)) cfg.shares;
    })

    (mkIf (!isVm) {
      # LXC bind-mounts the store, /boot, volumes and shares itself.
      boot.isContainer = true;
    })
  ]);
}
