# The module a guest configuration imports: builds it into a Miniguest
# guest output (see docs/contract.md) instead of a bootable disk.
{ config, lib, pkgs, ... }:
let
  contract = import ../lib/contract.nix;
  inherit (contract) layout limits;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types;
  cfg = config.boot.miniguest;
  isVm = cfg.guestType == "qemu";
  fs = cfg.qemu.fsType;
  platform = pkgs.stdenv.hostPlatform;

  userGaveInit = lib.any (p: lib.hasPrefix "init=" p) config.boot.kernelParams;
  manifest = contract.mkManifest {
    inherit (cfg) guestType memoryMiB vcpus interfaces;
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

  # The contract's rules, checked at evaluation so that a mistake is named
  # by its option before anything is built.
  validName = max: name: builtins.match contract.namePattern name != null && lib.stringLength name <= max;
  pathSteps = p: lib.filter (s: s != "") (lib.splitString "/" p);
  validMountPoint = p: lib.hasPrefix "/" p && pathSteps p != [ ]
    && !(lib.any (s: s == "." || s == "..") (pathSteps p));
  validSource = p: lib.hasPrefix "/" p && !(lib.elem ".." (pathSteps p));
  validMac = m: builtins.match "([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}" m != null;
  validObject = max: n: builtins.match "[A-Za-z0-9_][A-Za-z0-9_.-]*" n != null && lib.stringLength n <= max;
  opt = "boot.miniguest";
  contractAssertions =
    lib.concatLists (lib.mapAttrsToList
      (name: v: [
        {
          assertion = validName limits.volumeName name;
          message = "${opt}.volumes.${name}: a volume name is 1-${toString limits.volumeName} characters of ${contract.namePattern} (it is the disk's virtio serial)";
        }
        {
          assertion = !(lib.elem name contract.reservedTags);
          message = "${opt}.volumes.${name}: the name ${name} is reserved";
        }
        {
          assertion = !(cfg.shares ? ${name});
          message = "${opt}.volumes.${name}: ${opt}.shares.${name} has the same name (tags and volume names share one namespace)";
        }
        {
          assertion = validMountPoint v.mountPoint;
          message = "${opt}.volumes.${name}.mountPoint: ${builtins.toJSON v.mountPoint} must be absolute, not /, and without . or ..";
        }
      ])
      cfg.volumes)
    ++ lib.concatLists (lib.mapAttrsToList
      (tag: s: [
        {
          assertion = validName limits.shareTag tag;
          message = "${opt}.shares.${tag}: a share tag is 1-${toString limits.shareTag} characters of ${contract.namePattern}";
        }
        {
          assertion = !(lib.elem tag contract.reservedTags);
          message = "${opt}.shares.${tag}: the tag ${tag} is reserved for the store and /boot";
        }
        {
          assertion = validSource s.source;
          message = "${opt}.shares.${tag}.source: ${builtins.toJSON s.source} must be an absolute host path without ..";
        }
        {
          assertion = validMountPoint s.mountPoint;
          message = "${opt}.shares.${tag}.mountPoint: ${builtins.toJSON s.mountPoint} must be absolute, not /, and without . or ..";
        }
      ])
      cfg.shares)
    ++ lib.concatLists (lib.imap0
      (i: iface:
        let at = "${opt}.interfaces.${toString i}"; in [
          {
            assertion = (iface.type == "user") == (iface.source == null);
            message = "${at}.source: ${if iface.type == "user" then "a user interface takes no source" else "a ${iface.type} interface needs one"}";
          }
          {
            assertion = iface.source == null || validObject (if iface.type == "bridge" then 15 else 64) iface.source;
            message = "${at}.source: ${builtins.toJSON iface.source} is not a ${iface.type} name";
          }
          {
            assertion = iface.mac == null || validMac iface.mac;
            message = "${at}.mac: ${builtins.toJSON iface.mac} is not a MAC address (xx:xx:xx:xx:xx:xx)";
          }
          {
            assertion = iface.type == "user" || iface.forwardPorts == [ ];
            message = "${at}.forwardPorts: only a user interface forwards ports";
          }
        ])
      (if cfg.interfaces == null then [ ] else cfg.interfaces));
in
{
  # One key whichever way the module is imported (as this file, or as the
  # flake's nixosModules.guest), so importing it twice is harmless.
  key = "miniguest:nixosModules.guest";

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
        device, formatted by Miniguest on the host when it creates the image
        (so that a volume at a path stage 1 mounts, such as /var, boots the
        first time); containers get a host directory. A guest with no
        volumes and no writable shares is stateless.
      '';
      type = types.attrsOf (types.submodule {
        options = {
          mountPoint = mkOption { type = types.str; };
          sizeMiB = mkOption { type = types.ints.between 1 limits.sizeMiB; default = 1024; };
          fsType = mkOption { type = types.strMatching "[a-z0-9]+"; default = contract.defaultVolumeFsType; };
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
      default = null;
      description = ''
        Network interfaces. null (the default) gives the backend's default
        network: user-mode under plain QEMU, libvirt's `default` network
        where libvirt has one (else user-mode); containers get none.
        `[ ]` means no network.
      '';
      type = types.nullOr (types.listOf (types.submodule {
        options = {
          type = mkOption { type = types.enum contract.interfaceTypes; };
          source = mkOption { type = types.nullOr types.str; default = null; };
          mac = mkOption { type = types.nullOr types.str; default = null; };
          forwardPorts = mkOption {
            default = [ ];
            description = "Host ports forwarded to the guest (user-mode networking, plain QEMU).";
            type = types.listOf (types.submodule {
              options = {
                host = mkOption { type = types.port; };
                guest = mkOption { type = types.port; };
                proto = mkOption { type = types.enum [ "tcp" "udp" ]; default = "tcp"; };
                address = mkOption {
                  type = types.str;
                  default = "127.0.0.1";
                  description = "Host address to listen on; loopback unless you open it.";
                };
              };
            });
          };
        };
      }));
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = contractAssertions;

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
      }) (lib.filterAttrs (_: v: validMountPoint v.mountPoint) cfg.volumes)
      // lib.mapAttrs' (tag: s: lib.nameValuePair s.mountPoint (shareFileSystem { inherit tag; inherit (s) readOnly; }))
        (lib.filterAttrs (_: s: validMountPoint s.mountPoint) cfg.shares);
    })

    (mkIf (!isVm) {
      # LXC bind-mounts the store, /boot, volumes and shares itself.
      boot.isContainer = true;
    })
  ]);
}
