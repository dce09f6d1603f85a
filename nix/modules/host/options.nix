# The host module's options: the CLI's package and the declared guests
# (`miniguests.<name>.*`). What they make of the host is default.nix's;
# their rules are assertions.nix's.
{ config, lib, pkgs, ... }:
let
  contract = import ../../lib/contract.nix;
  inherit (lib) mkOption types;
in
{
  options.programs.miniguest.package = mkOption {
    type = types.package;
    # This flake's own, never a `pkgs.miniguest` of whatever nixpkgs the
    # host has: the modules and the CLI are one version.
    default = pkgs.callPackage ../../package.nix { };
    defaultText = lib.literalExpression "pkgs.callPackage miniguest's package.nix { }";
    description = "The miniguest CLI.";
  };

  options.miniguests = mkOption {
    default = { };
    description = "Guests declared by this host.";
    type = types.attrsOf (types.submodule {
      options = {
        configuration = mkOption {
          type = types.deferredModule;
          description = "The guest's NixOS configuration (the guest module is imported for it).";
        };
        system = mkOption {
          type = types.str;
          default = pkgs.stdenv.hostPlatform.system;
          defaultText = lib.literalExpression "pkgs.stdenv.hostPlatform.system";
          description = "The guest's system type.";
        };
        specialArgs = mkOption {
          type = types.attrsOf types.raw;
          default = config._module.specialArgs;
          defaultText = lib.literalExpression "the host's specialArgs";
          description = ''
            Arguments the guest's modules receive as specialArgs (for
            example `inputs`). By default the host's own; set `{ }` for none.
          '';
        };
        inheritNixpkgs = mkOption {
          type = types.bool;
          default = true;
          description = "Give the guest the host's nixpkgs.overlays and nixpkgs.config.";
        };
        backend = mkOption {
          type = types.nullOr (types.enum contract.definableBackends);
          default = null;
          description = "Hypervisor to define the guest in; null picks from the guest type.";
        };
        define = mkOption {
          type = types.bool;
          default = true;
          description = "Define (or redefine) the guest in its hypervisor at every activation.";
        };
        restartIfChanged = mkOption {
          type = types.bool;
          default = true;
          description = ''
            At every activation, restart the guest if it runs and booted
            something else than its current output (as nixos-container
            restarts changed containers).
          '';
        };
        waitReady = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          example = 120;
          description = ''
            With restartIfChanged: after restarting the guest, wait this many
            seconds for it to say its boot has finished
            (`boot.miniguest.readyCommand`), and fail the activation's unit if
            it does not, so that `nixos-rebuild switch` reports it (and
            `nixos-rebuild switch --rollback` brings the old guest back).
          '';
        };
        autostart = mkOption {
          type = types.bool;
          default = false;
          description = "Start the guest when the host boots.";
        };
        libvirtUri = mkOption {
          type = types.str;
          default = "qemu:///system";
          description = "libvirt connection for libvirt guests.";
        };
        storeView = mkOption {
          type = types.enum [ "full" "closure" ];
          default = "full";
          description = ''
            What of the host's store the guest sees: `full`, the whole
            store read-only, or `closure`, only the paths of its own
            closure (bind mounts of each, built as the guest starts; LXC
            and libvirt).
          '';
        };
        credentials = mkOption {
          # A string, not a path: a Nix path would be copied into the
          # world-readable store.
          type = types.attrsOf types.str;
          default = { };
          example = { ssh-host-key = "/var/lib/secrets/web/ssh_host_ed25519_key"; };
          description = ''
            The host file each systemd credential the guest declares
            (`boot.miniguest.credentials`) is read from when the guest
            starts: an absolute path outside the Nix store, such as one a
            secrets manager writes at activation. Every declared credential
            needs one, and only declared ones may be given.
          '';
        };
      };
    });
  };

  # What default.nix makes of each guest, once: its NixOS evaluation and
  # the backend it is defined in. Assertions and implementation read it, so
  # a guest is evaluated once however many places use it.
  options.programs.miniguest.declaredGuests = mkOption {
    internal = true;
    readOnly = true;
    type = types.attrsOf types.raw;
    description = "Each declared guest's evaluation and backend (internal).";
  };
}
