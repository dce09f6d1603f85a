# Declarative guests on a NixOS host. Each `miniguests.<name>` is built with
# the host, appears at /etc/miniguests/<name> (the CLI lists it as
# declarative and refuses to change it) and, if a backend is chosen, is
# defined in that hypervisor by a unit after activation. An upgraded guest
# takes effect at its next boot.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types;
  cfg = config.miniguests;
  package = config.programs.miniguest.package;

  evalGuest = name: guest: import "${pkgs.path}/nixos/lib/eval-config.nix" {
    inherit (guest) system;
    modules = [
      ./guest.nix
      guest.configuration
      { boot.miniguest.enable = true; networking.hostName = lib.mkDefault name; }
    ];
  };
  output = name: guest: (evalGuest name guest).config.system.build.miniguest;

  backendFor = name: guest:
    if guest.backend != null then guest.backend
    else if (evalGuest name guest).config.boot.miniguest.guestType == "lxc" then "lxc"
    else "libvirt";

  defineScript = name: guest:
    let
      q = lib.escapeShellArg name;
      backend = backendFor name guest;
    in
    if backend == "libvirt" then ''
      miniguest create -t libvirt --define --connect ${lib.escapeShellArg guest.libvirtUri} ${q}
      ${lib.optionalString guest.autostart
        "virsh -c ${lib.escapeShellArg guest.libvirtUri} autostart ${q}"}
    '' else ''
      if ! lxc-info -n ${q} >/dev/null 2>&1; then
        miniguest create -t lxc --define ${q}
        ${lib.optionalString guest.autostart
          ''echo "lxc.start.auto = 1" >> "$(lxc-config lxc.lxcpath)"/${q}/config''}
      fi
    '';
in
{
  options.programs.miniguest.package = mkOption {
    type = types.package;
    default = pkgs.miniguest or (pkgs.callPackage ../package.nix { });
    description = "The miniguest CLI.";
  };

  options.miniguests = mkOption {
    default = { };
    description = "Guests declared by this host.";
    type = types.attrsOf (types.submodule {
      options = {
        configuration = mkOption {
          type = types.deferredModule;
          description = "The guest's NixOS configuration (imports the guest module itself).";
        };
        system = mkOption {
          type = types.str;
          default = pkgs.stdenv.hostPlatform.system;
          description = "The guest's system type.";
        };
        backend = mkOption {
          type = types.nullOr (types.enum [ "libvirt" "lxc" ]);
          default = null;
          description = "Hypervisor to define the guest in; null picks from the guest type.";
        };
        define = mkOption {
          type = types.bool;
          default = true;
          description = "Define the guest in its hypervisor at activation.";
        };
        autostart = mkOption {
          type = types.bool;
          default = false;
          description = "Start the guest when the host boots.";
        };
        libvirtUri = mkOption {
          type = types.str;
          default = "qemu:///system";
        };
      };
    });
  };

  config = mkIf (cfg != { }) {
    environment.systemPackages = [ package ];

    environment.etc = lib.mapAttrs'
      (name: guest: lib.nameValuePair "miniguests/${name}" { source = output name guest; })
      cfg;

    systemd.services = lib.mapAttrs'
      (name: guest: lib.nameValuePair "miniguest-define-${name}" {
        description = "Define Miniguest guest ${name}";
        wantedBy = [ "multi-user.target" ];
        after = [ "libvirtd.service" "lxc.service" ];
        restartTriggers = [ (output name guest) ];
        path = [ package pkgs.libvirt pkgs.lxc ];
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        script = defineScript name guest;
      })
      (lib.filterAttrs (_: g: g.define) cfg);
  };
}
