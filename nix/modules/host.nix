# Declarative guests on a NixOS host. Each `miniguests.<name>` is evaluated
# once, built with the host, appears at /etc/miniguests/<name> (the CLI lists
# it as declarative and refuses to change it) and, if `define` is set, is
# defined (or redefined) in its hypervisor by a unit after every activation.
# An upgraded guest takes effect at its next boot.
{ config, lib, pkgs, modulesPath, ... }:
let
  inherit (lib) mkOption mkIf types;
  cfg = config.miniguests;
  package = config.programs.miniguest.package;
  hostNixpkgs = config.nixpkgs;

  # The CLI's name policy (docs/security.md): a host name without dots, and
  # nothing Nix would read as a profile generation.
  validName = name:
    builtins.match "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?" name != null
    && builtins.match ".*-[0-9]+-link.*" name == null;

  evalGuest = name: guest: import (modulesPath + "/../lib/eval-config.nix") {
    inherit lib;
    inherit (guest) system specialArgs;
    modules = [
      ./guest.nix
      guest.configuration
      {
        boot.miniguest.enable = true;
        networking.hostName = lib.mkDefault name;
      }
    ] ++ lib.optional guest.inheritNixpkgs {
      nixpkgs.overlays = hostNixpkgs.overlays;
      nixpkgs.config = hostNixpkgs.config;
    };
  };
  # Each guest is evaluated once, however many places use it.
  guests = lib.mapAttrs evalGuest cfg;
  output = name: guests.${name}.config.system.build.miniguest;
  backendFor = name: guest:
    if guest.backend != null then guest.backend
    else if guests.${name}.config.boot.miniguest.guestType == "lxc" then "lxc"
    else "libvirt";
  # Containers run with root mapped to root's subordinate range.
  lxcGuests = lib.filterAttrs (name: guest: lib.elem (backendFor name guest) [ "lxc" "nspawn" ]) cfg;

  # `create --define` updates an existing definition in place, so the unit
  # is right on every activation, not only the first.
  defineScript = name: guest:
    let
      backend = backendFor name guest;
      argv = [ "miniguest" "create" "-t" backend "--define" ]
        ++ lib.optionals (backend == "libvirt") [ "--connect" guest.libvirtUri ]
        ++ lib.optional guest.autostart "--autostart"
        ++ [ name ];
    in
    lib.escapeShellArgs argv
    + lib.optionalString guest.restartIfChanged
      "\n${lib.escapeShellArgs [ "miniguest" "restart" "--if-needed" name ]}";

  rootRange = field: r: r.count >= 65536 && r.${field} > 0;
  root = config.users.users.root or { subUidRanges = [ ]; subGidRanges = [ ]; };
  defaultRange = { count = 65536; };
in
{
  options.programs.miniguest.package = mkOption {
    type = types.package;
    default = pkgs.miniguest or (pkgs.callPackage ../package.nix { });
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
          type = types.nullOr (types.enum [ "libvirt" "lxc" "nspawn" ]);
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
      };
    });
  };

  config = lib.mkMerge [
    # The CLI is there for imperative guests too, whether or not any guest
    # is declared.
    { environment.systemPackages = [ package ]; }

    (mkIf (cfg != { }) {
      assertions = lib.mapAttrsToList
        (name: _: {
          assertion = validName name;
          message = "miniguests.${name}: a guest name is 1-63 letters, digits and '-', starting and ending with a letter or digit, without '-<number>-link' (it is also the guest's host name)";
        })
        cfg
      ++ lib.optionals (lxcGuests != { }) [
        {
          assertion = lib.any (rootRange "startUid") root.subUidRanges
            && lib.any (rootRange "startGid") root.subGidRanges;
          message = "miniguests: container guests (${lib.concatStringsSep ", " (lib.attrNames lxcGuests)}) run with root mapped to a subordinate range; give root one of 65536 ids that does not hold id 0, e.g. users.users.root.subUidRanges = [ { startUid = 1000000; count = 65536; } ] and users.users.root.subGidRanges = [ { startGid = 1000000; count = 65536; } ]";
        }
      ];

      # A stock host gives root no subordinate ids; LXC guests need them.
      users.users.root = mkIf (lxcGuests != { }) {
        subUidRanges = lib.mkDefault [ (defaultRange // { startUid = 1000000; }) ];
        subGidRanges = lib.mkDefault [ (defaultRange // { startGid = 1000000; }) ];
      };

      environment.etc = lib.mapAttrs'
        (name: _: lib.nameValuePair "miniguests/${name}" { source = output name; })
        cfg;

      systemd.services = lib.mapAttrs'
        (name: guest: lib.nameValuePair "miniguest-define-${name}" {
          description = "Define Miniguest guest ${name}";
          wantedBy = [ "multi-user.target" ];
          after = [ "libvirtd.service" "lxc.service" ];
          restartTriggers = [ (output name) ];
          path = [ package pkgs.libvirt pkgs.lxc ];
          serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
          script = defineScript name guest;
        })
        (lib.filterAttrs (_: g: g.define) cfg);
    })
  ];
}
