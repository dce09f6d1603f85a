# The guest module's options (`boot.miniguest.*`). What they mean for the
# guest output is default.nix's; their rules are assertions.nix's.
{ lib, ... }:
let
  contract = import ../../lib/contract.nix;
  inherit (contract) limits;
  inherit (lib) mkOption mkEnableOption types;
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

    guestAgent.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run the QEMU guest agent in a VM guest (`services.qemuGuest`), so
        that `miniguest exec`, readiness and `upgrade --switch` reach it.
        Containers need none: the host enters them directly.
      '';
    };

    readyCommand = mkOption {
      type = types.nonEmptyListOf types.str;
      default = contract.defaultReadyCommand;
      description = ''
        The command, run in the guest, whose first word says whether its
        boot has finished: `running` (ready), `degraded` (booted, with a
        failed unit), anything else for not yet. `miniguest start --wait`,
        `status` and checked upgrades ask it.
      '';
    };

    credentials = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ssh-host-key" "api-token" ];
      description = ''
        The systemd credentials this guest expects, by name. The host
        supplies each one's file when it defines the guest (`create
        --credential NAME=PATH`, or the host module's
        `miniguests.<name>.credentials`); the value never enters the Nix
        store. The guest's systemd has them as system credentials
        (`systemd-creds --system list`, `LoadCredential=NAME` in a unit):
        a VM's from QEMU's fw_cfg, a container's from the read-only
        directory its manager passes.
      '';
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
        Writable storage the hypervisor provides, by name. VM guests get a
        block device, formatted by Miniguest on the host when it creates the
        image (so that a volume at a path stage 1 mounts, such as /var,
        boots the first time); containers get a host directory. A guest
        with no volumes and no writable shares is stateless.
      '';
      type = types.attrsOf (types.submodule {
        options = {
          mountPoint = mkOption {
            type = types.str;
            description = "Where the guest mounts the volume: absolute, not `/`.";
          };
          sizeMiB = mkOption {
            type = types.ints.between 1 limits.sizeMiB;
            default = 1024;
            description = "Size of a VM's disk image, in MiB (containers' directories are unbounded).";
          };
          fsType = mkOption {
            type = types.strMatching contract.patterns.fsType;
            default = contract.defaultVolumeFsType;
            description = "File system Miniguest formats a new VM disk with (`mkfs.TYPE`).";
          };
        };
      });
    };

    shares = mkOption {
      default = { };
      description = "Host directories passed through to the guest, by virtio tag.";
      type = types.attrsOf (types.submodule {
        options = {
          source = mkOption {
            type = types.str;
            description = "Absolute path on the host.";
          };
          mountPoint = mkOption {
            type = types.str;
            description = "Where the guest mounts the share: absolute, not `/`.";
          };
          readOnly = mkOption {
            type = types.bool;
            default = false;
            description = "Whether the guest may only read the share.";
          };
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
          type = mkOption {
            type = types.enum contract.interfaceTypes;
            description = "`user` (user-mode networking), `bridge` (a host bridge) or `network` (a libvirt network).";
          };
          source = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The bridge or libvirt network to attach to; none for `user`.";
          };
          mac = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The interface's MAC address; by default libvirt guests get one derived from their name.";
          };
          forwardPorts = mkOption {
            default = [ ];
            description = "Host ports forwarded to the guest (user-mode networking, plain QEMU).";
            type = types.listOf (types.submodule {
              options = {
                host = mkOption {
                  type = types.port;
                  description = "The host port.";
                };
                guest = mkOption {
                  type = types.port;
                  description = "The guest port it reaches.";
                };
                proto = mkOption {
                  type = types.enum [ "tcp" "udp" ];
                  default = "tcp";
                  description = "The protocol forwarded.";
                };
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
}
