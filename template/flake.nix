{
  description = "Miniguest guests";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    miniguest.url = "github:miniguest/miniguest";
    miniguest.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = { self, nixpkgs, miniguest }:
    let
      guest = module: nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [ miniguest.nixosModules.guest module ];
      };
      # Every directory under ./guests is a guest of that name: adding one
      # adds a guest. Install with: miniguest install .#NAME
      dirs = nixpkgs.lib.filterAttrs (_: type: type == "directory") (builtins.readDir ./guests);
    in
    {
      nixosConfigurations = builtins.mapAttrs (name: _: guest ./guests/${name}) dirs;
    };
}
