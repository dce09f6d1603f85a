# nixos/lib/systemd-lib.nix, as far as the systemd stand-in's stage 1 and
# stage 2 use it: a service of the configuration written as a unit file,
# its script wrapped in a shell script of its own, its path and
# environment as Environment= lines.
{ lib, pkgs }:
let
  busybox = pkgs.busybox;
  value = v: if builtins.isBool v then lib.boolToString v else toString v;
in
rec {
  section = name: attrs: "[${name}]\n" + lib.concatStrings (lib.mapAttrsToList
    (k: v: lib.concatMapStrings (x: "${k}=${value x}\n") (lib.toList v)) attrs);

  # PATH holds busybox (the stand-in's coreutils) and systemd's programs
  # before the service's own path, as NixOS puts coreutils and systemd
  # there.
  serviceUnit = { systemd }: name: svc:
    let
      start = pkgs.writeScript "unit-script-${name}-start" ''
        #!${busybox}/bin/sh
        set -e
        ${svc.script}
      '';
      stop = pkgs.writeScript "unit-script-${name}-stop" ''
        #!${busybox}/bin/sh
        ${svc.preStop}
      '';
      deps = lib.filterAttrs (_: v: v != [ ]) {
        After = svc.after; Before = svc.before; Wants = svc.wants;
        Requires = svc.requires; Conflicts = svc.conflicts;
      };
      environment = { PATH = lib.makeBinPath ([ busybox systemd ] ++ svc.path); }
        // lib.filterAttrs (_: v: v != null) svc.environment;
    in
    pkgs.writeText "${name}.service" (
      section "Unit" (lib.optionalAttrs (svc.description != "") { Description = svc.description; } // deps // svc.unitConfig)
      + section "Service" ({
        Environment = lib.mapAttrsToList (k: v: "${k}=${toString v}") environment;
      } // lib.optionalAttrs (svc.script != "") { ExecStart = "${start}"; }
        // lib.optionalAttrs (svc.preStop != "") { ExecStop = "${stop}"; }
        // svc.serviceConfig));
}
