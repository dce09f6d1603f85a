# From nixos/modules/tasks/filesystems.nix and tasks/filesystems/zfs.nix:
# boot.supportedFilesystems collects every file system's fsType, and the
# ZFS module's assertions exist only when it holds zfs. So collecting the
# assertions (what a NixOS evaluation does first) forces the fsType of
# every file system: a conflicting definition fails there, before any
# assertion's message is shown, as it does on NixOS.
{ config, lib, ... }:
let
  attrNamesToTrue = lib.types.coercedTo (lib.types.listOf lib.types.str)
    (names: lib.genAttrs names (_: true))
    (lib.types.attrsOf lib.types.bool);
in
{
  options.boot.supportedFilesystems = lib.mkOption {
    type = attrNamesToTrue;
    default = { };
  };
  options.networking.hostId = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    default = null;
  };
  config = lib.mkMerge [
    { boot.supportedFilesystems = map (fs: fs.fsType) (lib.attrValues config.fileSystems); }
    (lib.mkIf (config.boot.supportedFilesystems.zfs or false) {
      assertions = [{
        assertion = config.networking.hostId != null;
        message = "ZFS requires networking.hostId to be set";
      }];
    })
  ];
}
