# networking.interfaces.<name>.ipv4.addresses as NixOS's scripted
# networking configures them (nixos/modules/tasks/network-interfaces*.nix):
# a network-addresses-NAME unit that brings the link up and adds each
# address, part of network.target in a container (outside one it waits for
# the interface's device unit, which the stand-in's VMs do not need), and
# network.target wanted by multi-user.target. The stand-in's `ip` is
# busybox's, where NixOS's is iproute2's.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  address = types.submodule {
    options = {
      address = mkOption { type = types.str; };
      prefixLength = mkOption { type = types.addCheck types.int (n: n >= 0 && n <= 32); };
    };
  };
  configured = lib.filterAttrs (_: i: i.ipv4.addresses != [ ]) config.networking.interfaces;
in
{
  options.networking.interfaces = mkOption {
    default = { };
    type = types.attrsOf (types.submodule ({ name, ... }: {
      options = {
        name = mkOption { type = types.str; default = name; };
        ipv4.addresses = mkOption { type = types.listOf address; default = [ ]; };
      };
    }));
  };

  config = lib.mkIf (configured != { }) {
    systemd.targets.network.wantedBy = [ "multi-user.target" ];
    systemd.services = lib.mapAttrs' (_: i: lib.nameValuePair "network-addresses-${i.name}" {
      description = "Address configuration of ${i.name}";
      wantedBy = lib.optional config.boot.isContainer "network.target";
      after = [ "network-pre.target" ];
      serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
      script = ''
        ip link set dev ${lib.escapeShellArg i.name} up
        ${lib.concatMapStrings (a: ''
          ip addr replace ${lib.escapeShellArg "${a.address}/${toString a.prefixLength}"} dev ${lib.escapeShellArg i.name}
        '') i.ipv4.addresses}
      '';
    }) configured;
  };
}
