# The model's counterpart of nixos/modules/module-list.nix.
[
  ./options.nix
  ./toplevel.nix
]
