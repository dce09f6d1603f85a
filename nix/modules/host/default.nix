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
      # The nixpkgs the guest was built from, for its NIX_PATH and flake
      # registry, as lib.nixosSystem gives the host.
      nixpkgs.flake.source = lib.mkIf (hostNixpkgs.flake.source != null) (lib.mkDefault hostNixpkgs.flake.source);
    };
  };
  declared = config.programs.miniguest.declaredGuests;
  output = name: declared.${name}.eval.config.system.build.miniguest;
  backendFor = name: declared.${name}.backend;
  # Containers run with root mapped to root's subordinate range.
  containers = lib.filterAttrs (_: g: lib.elem g.backend [ "lxc" "nspawn" ]) declared;
  on = backend: lib.filterAttrs (_: g: g.backend == backend) declared;
  usesVirtiofs = lib.any (g: g.eval.config.boot.miniguest.qemu.fsType == "virtiofs")
    (lib.attrValues (on "libvirt"));
  # Where systemd reads what is defined at run time: on NixOS,
  # /etc/systemd/system is a link into the store. The define unit runs at
  # every boot, so what it writes there is always in place.
  nspawnDirs = [ "--nspawn-dir" "/run/systemd/nspawn" "--unit-dir" "/run/systemd/system" ];
  # What each backend's define unit runs beside the CLI.
  backendPath = {
    libvirt = [ config.virtualisation.libvirtd.package ] ++ lib.optional usesVirtiofs pkgs.virtiofsd;
    lxc = [ config.virtualisation.lxc.package ];
    nspawn = [ ];
  };
  backendAfter = {
    libvirt = [ "libvirtd.service" ];
    lxc = [ "network.target" ];
    nspawn = [ "network.target" ];
  };

  # `create --define` updates an existing definition in place, so the unit
  # is right on every activation, not only the first.
  defineScript = name: guest:
    let
      backend = backendFor name;
      argv = [ "miniguest" "create" "-t" backend "--define" ]
        ++ lib.optionals (backend == "libvirt") [ "--connect" guest.libvirtUri ]
        ++ lib.optionals (backend == "nspawn") nspawnDirs
        ++ lib.optional guest.autostart "--autostart"
        ++ lib.optionals (guest.storeView != "full") [ "--store-view" guest.storeView ]
        ++ lib.concatLists (lib.mapAttrsToList (cred: source: [ "--credential" "${cred}=${source}" ]) guest.credentials)
        ++ [ name ];
    in
    lib.escapeShellArgs argv
    # systemd reads a new drop-in only when told to.
    + lib.optionalString (backend == "nspawn") "\nsystemctl daemon-reload"
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
          after = backendAfter.${backendFor name};
          restartTriggers = [ (output name) ];
          path = [ package ] ++ backendPath.${backendFor name};
          serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
          script = defineScript name guest;
        })
        (lib.filterAttrs (_: g: g.define) cfg)
      # libvirt starts its own autostart domains. Nothing on NixOS runs
      # lxc-autostart, and `machinectl enable` would write into
      # /etc/systemd/system: a container that starts with the host is
      # started, and stopped before the host goes down, by a unit of its
      # own. Not restarted by a switch, which leaves running guests alone.
      // lib.mapAttrs'
        (name: _: lib.nameValuePair "miniguest-autostart-${name}" {
          description = "Start Miniguest guest ${name} with the host";
          wantedBy = [ "multi-user.target" ];
          requires = lib.optional cfg.${name}.define "miniguest-define-${name}.service";
          after = [ "miniguest-define-${name}.service" ] ++ backendAfter.${backendFor name};
          restartIfChanged = false;
          path = [ package ] ++ backendPath.${backendFor name};
          serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
          script = lib.escapeShellArgs [ "miniguest" "start" name ];
          preStop = lib.escapeShellArgs [ "miniguest" "stop" name ];
        })
        (lib.filterAttrs (name: g: g.autostart && backendFor name != "libvirt") cfg);
    })

    (mkIf (on "libvirt" != { }) {
      # libvirt, as NixOS builds it, reads its hooks from
      # /var/lib/libvirt/hooks, and its libvirtd-config unit replaces
      # them with these at every start.
      virtualisation.libvirtd.hooks.qemu.miniguest = "${package}/libexec/miniguest/libvirt-qemu-hook";
    })

    (mkIf usesVirtiofs {
      # libvirt finds vhost-user back ends here; miniguest-virtiofsd, which
      # libvirtd runs for read-only shares, finds virtiofsd in its PATH.
      virtualisation.libvirtd.qemu.vhostUserPackages = [ pkgs.virtiofsd ];
      systemd.services.libvirtd.path = [ pkgs.virtiofsd ];
    })
  ];
}
