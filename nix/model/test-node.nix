# What a NixOS test node has beyond an ordinary system: the options of
# nixos/modules/virtualisation/qemu-vm.nix that tests set, and the root
# file system it gives every node (its disk image, labelled "nixos").
{ lib, ... }:
{
  options.virtualisation = {
    memorySize = lib.mkOption { type = lib.types.ints.positive; default = 1024; };
    diskSize = lib.mkOption { type = lib.types.nullOr lib.types.ints.positive; default = 1024; };
    cores = lib.mkOption { type = lib.types.ints.positive; default = 1; };
  };
  # qemu-vm.nix sets the node's file systems with mkVMOverride (priority 10).
  config.fileSystems = lib.mkOverride 10 {
    "/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
  };
}
