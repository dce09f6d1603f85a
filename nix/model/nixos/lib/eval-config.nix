# Stands where nixpkgs keeps nixos/lib/eval-config.nix (reached as
# "${pkgs.path}/nixos/lib/eval-config.nix" or modulesPath + "/../lib/…"),
# so that modules which evaluate other NixOS configurations evaluate the
# model.
import ../../eval-config.nix
