# Declarative guests on a NixOS host. Each `miniguests.<name>` is evaluated
# once, built with the host, appears at /etc/miniguests/<name> (the CLI lists
# it as declarative and refuses to change it) and, if `define` is set, is
# defined (or redefined) in its hypervisor by a unit after every activation.
# An upgraded guest takes effect at its next boot. The options are
# options.nix's, their rules assertions.nix's.
{ config, lib, pkgs, modulesPath, ... }:
let
  inherit (lib) mkIf;
  cfg = config.miniguests;
  package = config.programs.miniguest.package;
  hostNixpkgs = config.nixpkgs;

  evalGuest = name: guest: import (modulesPath + "/../lib/eval-config.nix") {
    inherit lib;
    inherit (guest) system specialArgs;
    modules = [
      ../guest
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
  declared = config.programs.miniguest.declaredGuests;
  output = name: declared.${name}.eval.config.system.build.miniguest;
  backendFor = name: declared.${name}.backend;
  # Containers run with root mapped to root's subordinate range.
  containers = lib.filterAttrs (_: g: lib.elem g.backend [ "lxc" "nspawn" ]) declared;

  # `create --define` updates an existing definition in place, so the unit
  # is right on every activation, not only the first.
  defineScript = name: guest:
    let
      backend = backendFor name;
      argv = [ "miniguest" "create" "-t" backend "--define" ]
        ++ lib.optionals (backend == "libvirt") [ "--connect" guest.libvirtUri ]
        ++ lib.optional guest.autostart "--autostart"
        ++ lib.optionals (guest.storeView != "full") [ "--store-view" guest.storeView ]
        ++ lib.concatLists (lib.mapAttrsToList (cred: source: [ "--credential" "${cred}=${source}" ]) guest.credentials)
        ++ [ name ];
    in
    lib.escapeShellArgs argv
    + lib.optionalString guest.restartIfChanged
      "\n${lib.escapeShellArgs ([ "miniguest" "restart" "--if-needed" ]
        ++ lib.optional (guest.waitReady != null) "--wait=${toString guest.waitReady}"
        ++ [ name ])}";

  defaultRange = { count = 65536; };
in
{
  imports = [ ./options.nix ./assertions.nix ];

  config = lib.mkMerge [
    # The CLI is there for imperative guests too, whether or not any guest
    # is declared.
    { environment.systemPackages = [ package ]; }

    {
      # Each guest is evaluated once, however many places use it.
      programs.miniguest.declaredGuests = lib.mapAttrs
        (name: guest:
          let eval = evalGuest name guest; in {
            inherit eval;
            backend =
              if guest.backend != null then guest.backend
              else if eval.config.boot.miniguest.guestType == "lxc" then "lxc"
              else "libvirt";
          })
        cfg;
    }

    (mkIf (cfg != { }) {
      # A stock host gives root no subordinate ids; container guests need
      # them.
      users.users.root = mkIf (containers != { }) {
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
