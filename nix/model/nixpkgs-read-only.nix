# nixos/modules/misc/nixpkgs/read-only.nix: nixpkgs.pkgs is given, and
# nixpkgs.config and nixpkgs.overlays are read-only reflections of it. A
# module that sets either fails, as it does under runNixOSTest.
{ lib, config, ... }:
let
  cfg = config.nixpkgs;
  inherit (lib) mkOption types;
in
{
  options.nixpkgs = {
    pkgs = mkOption { type = lib.types.pkgs; };
    config = mkOption {
      internal = true;
      type = types.unique { message = "nixpkgs.config is set to read-only"; } types.anything;
    };
    overlays = mkOption {
      internal = true;
      type = types.unique { message = "nixpkgs.overlays is set to read-only"; } types.anything;
    };
    hostPlatform = mkOption { internal = true; readOnly = true; };
    buildPlatform = mkOption { internal = true; readOnly = true; };
  };
  config = {
    _module.args.pkgs =
      builtins.seq cfg.config builtins.seq cfg.overlays builtins.seq cfg.hostPlatform builtins.seq
        cfg.buildPlatform
        cfg.pkgs.__splicedPackages;
    nixpkgs.config = cfg.pkgs.config;
    nixpkgs.overlays = cfg.pkgs.overlays;
    nixpkgs.hostPlatform = cfg.pkgs.stdenv.hostPlatform;
    nixpkgs.buildPlatform = cfg.pkgs.stdenv.buildPlatform;
  };
}
