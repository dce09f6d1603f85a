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
    in
    {
      # Install with: miniguest install .#stateless   (then: miniguest create stateless)
      nixosConfigurations = {
        stateless = guest ./guests/stateless;
        container = guest ./guests/container;
      };
    };
}
