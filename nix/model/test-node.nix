# What a NixOS test node has beyond an ordinary system: the options of
# nixos/modules/virtualisation/qemu-vm.nix that tests set.
{ lib, ... }:
{
  options.virtualisation = {
    memorySize = lib.mkOption { type = lib.types.ints.positive; default = 1024; };
    diskSize = lib.mkOption { type = lib.types.nullOr lib.types.ints.positive; default = 1024; };
    cores = lib.mkOption { type = lib.types.ints.positive; default = 1; };
  };
}
