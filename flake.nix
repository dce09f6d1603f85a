{
  description = "Miniguest: lightweight, declarative NixOS guests whose program lives in the host's Nix store";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      # The system by name, not `pkgs.system` (renamed in nixpkgs to
      # stdenv.hostPlatform.system, and warned about).
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      lib.contract = import ./nix/lib/contract.nix;

      # Modules as paths: imported from here and by the host module alike,
      # each is one module (the guest module also carries a key of its own). The
      # host module touches no nixpkgs option, so hosts with a read-only
      # `nixpkgs.pkgs` (as in NixOS tests) can use it.
      nixosModules = rec {
        guest = ./nix/modules/guest;
        core = guest;
        default = guest;
        host = ./nix/modules/host;
        declarative = host;
      };

      overlays.default = final: _prev: {
        miniguest = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (_: pkgs: rec {
        miniguest = pkgs.callPackage ./nix/package.nix { };
        default = miniguest;
      });

      apps = forAllSystems (system: _: {
        default = {
          type = "app";
          program = "${self.packages.${system}.miniguest}/bin/miniguest";
          meta.description = "The miniguest command: install, define and run NixOS guests";
        };
      });

      templates.default = {
        path = ./template;
        description = "Example Miniguest guests: a stateless VM and a container";
      };

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${system}.miniguest ];
          packages = with pkgs; [
            cargo rustc clippy rustfmt nix qemu libvirt lxc busybox
            cpio gzip jq hyperfine virt-manager
          ];
        };
      });

      checks.x86_64-linux = import ./nix/checks {
        pkgs = nixpkgs.legacyPackages.x86_64-linux;
        inherit self;
      };
    };
}
