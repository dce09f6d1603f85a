# The model's counterpart of nixos/modules/module-list.nix.
[
  ./options.nix
  ./filesystems.nix
  ./virtualisation.nix
  ./systemd.nix
  ./systemd-initrd.nix
  ./security.nix
  ./openssh.nix
  ./networking.nix
  ./toplevel.nix
]
