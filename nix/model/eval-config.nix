# The model's nixos/lib/eval-config.nix: the same arguments, evaluated with
# nixpkgs' module system over the model's option declarations instead of
# NixOS's module list.
{ lib ? throw "the NixOS model needs nixpkgs' lib: pass `lib`"
, system ? null
, pkgs ? null
, baseModules ? import ./module-list.nix
, extraModules ? [ ]
, modules
, specialArgs ? { }
, prefix ? [ ]
, check ? true
  # As nixos/lib/testing/nodes.nix does with node.pkgs: the read-only
  # nixpkgs module with this package set.
, readOnlyPkgs ? null
}:
let
  files = import ./files.nix;
  nixpkgsModule =
    if readOnlyPkgs != null then [ ./nixpkgs-read-only.nix { nixpkgs.pkgs = readOnlyPkgs; } ]
    else [ ./nixpkgs.nix ];
  legacy = lib.optional (system != null) { nixpkgs.system = lib.mkDefault system; }
    ++ lib.optional (pkgs != null) { _module.args.pkgs = lib.mkForce pkgs; };
in
# Counted by the tests: one line per NixOS evaluation.
builtins.trace "nixos-model: evaluating a configuration"
  (lib.evalModules {
    inherit prefix;
    class = "nixos";
    specialArgs = { modulesPath = toString ./nixos/modules; } // specialArgs;
    modules = baseModules ++ nixpkgsModule ++ extraModules ++ modules ++ legacy ++ [
      { _module.check = check; _module.args.modelFiles = files; }
    ];
  })
