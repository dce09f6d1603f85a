# The contract's rules (nix/lib/contract.nix's `valid`) as assertions on
# `boot.miniguest.*`, so that a mistake is named by its option before
# anything is built; the CLI refuses the same manifests.
{ config, options, lib, ... }:
let
  contract = import ../../lib/contract.nix;
  inherit (contract) limits valid;
  cfg = config.boot.miniguest;
  opt = "boot.miniguest";
  mountPointRule = "must be absolute, not /, and without . or ..";
  mountPointMessage = p: if p == "/" then "may not be /" else mountPointRule;
  # Set by the configuration, not left at the option's default.
  isSet = o: o.highestPrio < (lib.mkOptionDefault { }).priority;
  vmOnly = [ [ "qemu" "fsType" ] [ "memoryMiB" ] [ "vcpus" ] [ "guestAgent" "enable" ] ];
in
{
  config = lib.mkIf cfg.enable {
    assertions =
      lib.concatLists (lib.mapAttrsToList
        (name: v: [
          {
            assertion = valid.volumeName name || lib.elem name contract.reservedTags;
            message = "${opt}.volumes.${name}: a volume name is 1-${toString limits.volumeName} characters of ${contract.patterns.name} (it is the disk's virtio serial)";
          }
          {
            assertion = !(lib.elem name contract.reservedTags);
            message = "${opt}.volumes.${name}: the name ${name} is reserved";
          }
          {
            assertion = !(cfg.shares ? ${name});
            message = "${opt}.volumes.${name}: ${opt}.shares.${name} has the same name (tags and volume names share one namespace)";
          }
          {
            assertion = valid.mountPoint v.mountPoint;
            message = "${opt}.volumes.${name}.mountPoint: ${builtins.toJSON v.mountPoint} ${mountPointMessage v.mountPoint}";
          }
        ])
        cfg.volumes)
      ++ lib.concatLists (lib.mapAttrsToList
        (tag: s: [
          {
            assertion = valid.shareTag tag || lib.elem tag contract.reservedTags;
            message = "${opt}.shares.${tag}: a share tag is 1-${toString limits.shareTag} characters of ${contract.patterns.name}";
          }
          {
            assertion = !(lib.elem tag contract.reservedTags);
            message = "${opt}.shares.${tag}: the tag ${tag} is reserved for the store and /boot";
          }
          {
            assertion = valid.hostPath s.source;
            message = "${opt}.shares.${tag}.source: ${builtins.toJSON s.source} must be an absolute host path without ..";
          }
          {
            assertion = valid.mountPoint s.mountPoint;
            message = "${opt}.shares.${tag}.mountPoint: ${builtins.toJSON s.mountPoint} ${mountPointMessage s.mountPoint}";
          }
        ])
        cfg.shares)
      ++ lib.imap0
        (i: n: {
          assertion = valid.credentialName n;
          message = "${opt}.credentials.${toString i}: ${builtins.toJSON n} is not a credential name (1-${toString limits.credentialName} characters of ${contract.patterns.credentialName})";
        })
        cfg.credentials
      ++ lib.optional (lib.length (lib.unique cfg.credentials) != lib.length cfg.credentials) {
        assertion = false;
        message = "${opt}.credentials: a name is listed twice";
      }
      ++ lib.concatLists (lib.imap0
        (i: iface:
          let at = "${opt}.interfaces.${toString i}"; in [
            {
              assertion = (iface.type == "user") == (iface.source == null);
              message = "${at}.source: ${if iface.type == "user" then "a user interface takes no source" else "a ${iface.type} interface needs one"}";
            }
            {
              assertion = iface.source == null
                || (if iface.type == "bridge" then valid.bridge else valid.network) iface.source;
              message = "${at}.source: ${builtins.toJSON iface.source} is not a ${iface.type} name";
            }
            {
              assertion = iface.mac == null || valid.mac iface.mac;
              message = "${at}.mac: ${builtins.toJSON iface.mac} is not a MAC address (xx:xx:xx:xx:xx:xx)";
            }
            {
              assertion = iface.type == "user" || iface.forwardPorts == [ ];
              message = "${at}.forwardPorts: only a user interface forwards ports";
            }
          ])
        (if cfg.interfaces == null then [ ] else cfg.interfaces))
      # A container gets no VM's devices: what only a VM has is an error
      # there rather than silently ignored.
      ++ lib.optionals (cfg.guestType == "lxc") (
        map
          (path: {
            assertion = !(isSet (lib.getAttrFromPath path options.boot.miniguest));
            message = "${opt}.${lib.concatStringsSep "." path}: only VM guests (guestType = \"qemu\") have this option; leave it unset in a container guest";
          })
          vmOnly
        ++ lib.imap0
          (i: iface: {
            assertion = iface.forwardPorts == [ ];
            message = "${opt}.interfaces.${toString i}.forwardPorts: only VM guests forward ports (user-mode networking); a container shares its network namespace's ports";
          })
          (if cfg.interfaces == null then [ ] else cfg.interfaces));
  };
}
