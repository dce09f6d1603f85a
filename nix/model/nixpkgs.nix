# nixos/modules/misc/nixpkgs.nix, as far as Miniguest's modules touch it:
# `pkgs` is made from nixpkgs.config and nixpkgs.overlays, or is the given
# nixpkgs.pkgs with the overlays appended.
{ config, options, lib, modelFiles, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixpkgs;
  overlayType = types.mkOptionType {
    name = "nixpkgs-overlay";
    check = lib.isFunction;
    merge = lib.mergeOneOption;
  };
  defaultPkgs = import ./pkgs.nix {
    inherit lib;
    inherit (cfg) system config overlays;
    files = modelFiles;
  };
in
{
  options.nixpkgs = {
    pkgs = mkOption { type = types.pkgs; };
    config = mkOption {
      type = types.attrsOf types.anything // { name = "nixpkgs-config"; };
      default = { };
    };
    overlays = mkOption { type = types.listOf overlayType; default = [ ]; };
    system = mkOption { type = types.str; default = "x86_64-linux"; };
    hostPlatform = mkOption { readOnly = true; internal = true; };
  };
  config = {
    _module.args.pkgs =
      if options.nixpkgs.pkgs.isDefined then cfg.pkgs.appendOverlays cfg.overlays else defaultPkgs;
    nixpkgs.hostPlatform = lib.systems.elaborate cfg.system;
  };
}
