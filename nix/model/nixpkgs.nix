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
  # Built for nixpkgs.hostPlatform, which defaults to nixpkgs.system.
  defaultPkgs = import ./pkgs.nix {
    inherit lib;
    inherit (cfg) config overlays;
    inherit (cfg.hostPlatform) system;
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
    hostPlatform = mkOption {
      type = types.either types.str types.attrs;
      apply = lib.systems.elaborate;
    };
  };
  config = {
    _module.args.pkgs =
      if options.nixpkgs.pkgs.isDefined then cfg.pkgs.appendOverlays cfg.overlays else defaultPkgs;
    nixpkgs.hostPlatform = lib.mkOptionDefault cfg.system;
  };
}
