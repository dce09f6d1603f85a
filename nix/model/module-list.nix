# The model's counterpart of nixos/modules/module-list.nix.
[
  ./options.nix
  ./filesystems.nix
  ./virtualisation.nix
  ./systemd.nix
  ./security.nix
  ./toplevel.nix
]
