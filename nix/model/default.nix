# An offline model of NixOS for the test suite: nixpkgs' module system
# (nixpkgs' lib, passed in), declarations of the NixOS options Miniguest's
# modules touch (NixOS's names, types and defaults), a package set of real
# derivations, and a toplevel that boots the stand-in guest with the file
# systems and kernel parameters the configuration declares.
#
# It also stands in for the flake input `nixpkgs`: `lib.nixosSystem`,
# `legacyPackages.<system>` and `nixosModules.readOnlyPkgs`.
{ lib }:
let
  systems = [ "x86_64-linux" "aarch64-linux" ];
  nixosSystem = args: import ./eval-config.nix ({ inherit lib; } // args);
in
{
  inherit nixosSystem;
  pkgsFor = system: import ./pkgs.nix { inherit lib system; files = import ./files.nix; };
  nixpkgs = {
    lib = lib // { inherit nixosSystem; };
    legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix {
      inherit lib system;
      files = import ./files.nix;
    });
    nixosModules.readOnlyPkgs = ./nixpkgs-read-only.nix;
    outPath = toString ./.;
  };
}
