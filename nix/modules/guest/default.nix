# The module a guest configuration imports: builds it into a Miniguest
# guest output (see docs/contract.md) instead of a bootable disk. Its
# options are options.nix's, their rules assertions.nix's; this file is
# what they make of the configuration.
{ config, lib, pkgs, ... }:
let
  contract = import ../../lib/contract.nix;
  inherit (contract) layout;
  inherit (lib) mkIf mkMerge;
  cfg = config.boot.miniguest;
  isVm = cfg.guestType == "qemu";
  fs = cfg.qemu.fsType;
  platform = pkgs.stdenv.hostPlatform;

  userGaveInit = lib.any (p: lib.hasPrefix "init=" p) config.boot.kernelParams;
  agent = isVm && cfg.guestAgent.enable;
  manifest = contract.mkManifest {
    inherit (cfg) guestType memoryMiB vcpus interfaces readyCommand credentials;
    # What the guest really runs: the module only defaults the service on.
    agent = agent && config.services.qemuGuest.enable;
    toplevel = "${config.system.build.toplevel}";
    qemu.fsType = fs;
    # With direct kernel boot the hypervisor passes these; stage 1 then runs
    # the guest's stage 2 from the boot share.
    kernelParams = config.boot.kernelParams
      ++ lib.optional (!userGaveInit) "init=/${layout.init}";
    volumes = lib.mapAttrs (_: v: { inherit (v) mountPoint sizeMiB fsType; }) cfg.volumes;
    shares = lib.mapAttrs (_: s: { inherit (s) source mountPoint readOnly; }) cfg.shares;
  };

  closureInfo = pkgs.closureInfo { rootPaths = [ config.system.build.toplevel ]; };

  # Never an empty option list (fileSystems.<name>.options is non-empty);
  # loose caching only for the read-only store; and under systemd stage 1,
  # mounted only once the share's module has loaded.
  shareFileSystem = { tag, readOnly, store ? false }: {
    device = tag;
    fsType = fs;
    options = contract.mountOptions.${fs}
      ++ lib.optionals store contract.storeMountOptions.${fs}
      ++ [ (if readOnly then "ro" else "rw") ]
      ++ lib.optional config.boot.initrd.systemd.enable
        "x-systemd.requires=modprobe@${contract.shareModule.${fs}}.service";
  };

  # The serial console of the machine type the host gives this platform
  # (pc on x86, virt elsewhere).
  console = if platform.isx86 then "ttyS0" else "ttyAMA0";

in
{
  # One key whichever way the module is imported (as this file, or as the
  # flake's nixosModules.guest), so importing it twice is harmless.
  key = "miniguest:nixosModules.guest";

  imports = [ ./options.nix ./assertions.nix ];

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
      boot.loader.grub.enable = lib.mkDefault false;

      # The guest's Nix database learns its closure from the boot share. A
      # unit rather than boot.postBootCommands, which NixOS's nixos-init
      # (system.nixos-init) refuses.
      systemd.services.miniguest-register-closure = {
        description = "Register the guest's closure in its Nix database";
        wantedBy = [ "multi-user.target" ];
        before = [ "nix-daemon.service" "nix-daemon.socket" ];
        after = [ "local-fs.target" ];
        unitConfig.ConditionPathExists = "/${layout.registration}";
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        # Nix, run as root on a read-only store, first remounts it
        # writable, which a container's root may not do to the bind its
        # host locked (nor should it). Loading the registration writes only
        # the database: told that the store's files are in an empty
        # directory of its own, Nix remounts nothing.
        script = let store = lib.optionalString config.boot.isContainer " --store local?real=/run/miniguest-register"; in ''
          ${config.nix.package.out}/bin/nix-store${store} --load-db < /${layout.registration}
          ${config.nix.package.out}/bin/nix-env${store} -p /nix/var/nix/profiles/system --set /run/current-system
        '';
      };
    }

    (mkIf isVm {
      boot.initrd.availableKernelModules = contract.initrdModules.${fs};
      boot.initrd.kernelModules = contract.initrdModules.${fs};
      boot.kernelParams = [ "console=${console}" ];

      fileSystems = {
        "/nix/store" = shareFileSystem { tag = layout.storeTag; readOnly = true; store = true; } // { neededForBoot = true; };
        "/boot" = shareFileSystem { tag = layout.bootTag; readOnly = true; } // { neededForBoot = true; };
      }
      # Only where the mount point is valid: one at "/" (or with "..") would
      # collide with the user's own fileSystems and fail evaluation there,
      # before the assertion that names the option is shown.
      // lib.mapAttrs' (name: v: lib.nameValuePair v.mountPoint {
        device = contract.volumeDevice name;
        inherit (v) fsType;
      }) (lib.filterAttrs (_: v: contract.valid.mountPoint v.mountPoint) cfg.volumes)
      // lib.mapAttrs' (tag: s: lib.nameValuePair s.mountPoint (shareFileSystem { inherit tag; inherit (s) readOnly; }))
        (lib.filterAttrs (_: s: contract.valid.mountPoint s.mountPoint) cfg.shares);
    })

    (mkIf (isVm && config.boot.initrd.systemd.enable && !config.system.nixos-init.enable) {
      # Stage 1 finds the system through init=, which lives on the boot
      # share: nixpkgs orders the unit after the store's mount only.
      boot.initrd.systemd.services.initrd-find-nixos-closure.unitConfig.RequiresMountsFor = [ "/sysroot/${layout.bootDir}" ];
    })

    (mkIf (isVm && cfg.credentials != [ ]) {
      # systemd reads fw_cfg's credentials through this driver's sysfs
      # files; loaded in stage 1, they are there before the system starts.
      boot.initrd.kernelModules = contract.credentialModules;
    })

    (mkIf agent {
      services.qemuGuest.enable = lib.mkDefault true;
      # Its port, before stage 2 needs it.
      boot.initrd.kernelModules = contract.agentModules;
    })

    (mkIf (!isVm) {
      # LXC bind-mounts the store, /boot, volumes and shares itself.
      boot.isContainer = true;
    })
  ]);
}
