# The host module's rules as assertions: guest names follow the CLI's
# policy (contract.nix's `valid.guestName`), and container guests need root
# to have a subordinate id range that does not hold id 0.
{ config, lib, ... }:
let
  contract = import ../../lib/contract.nix;
  cfg = config.miniguests;
  declared = config.programs.miniguest.declaredGuests;
  containers = lib.filterAttrs (_: g: lib.elem g.backend [ "lxc" "nspawn" ]) declared;
  rootRange = field: r: r.count >= 65536 && r.${field} > 0;
  root = config.users.users.root or { subUidRanges = [ ]; subGidRanges = [ ]; };
in
{
  config = lib.mkIf (cfg != { }) {
    assertions = lib.mapAttrsToList
      (name: _: {
        assertion = contract.valid.guestName name;
        message = "miniguests.${name}: a guest name is 1-${toString contract.limits.guestName} letters, digits and '-', starting and ending with a letter or digit, without '-<number>-link' (it is also the guest's host name)";
      })
      cfg
    ++ lib.concatLists (lib.mapAttrsToList
      (name: guest:
        let
          at = "miniguests.${name}.credentials";
          declaredNames = declared.${name}.eval.config.boot.miniguest.credentials;
        in
        lib.mapAttrsToList
          (cred: source: {
            assertion = lib.hasPrefix "/" source && !(lib.hasPrefix builtins.storeDir source)
              && contract.valid.hostPath source;
            message = "${at}.${cred}: ${builtins.toJSON source} must be an absolute path outside the Nix store (the store is world-readable)";
          })
          guest.credentials
        ++ map
          (cred: {
            assertion = guest.credentials ? ${cred};
            message = "${at}.${cred}: guest ${name} declares credential ${cred} (boot.miniguest.credentials); give the host file it is read from";
          })
          declaredNames
        ++ map
          (cred: {
            assertion = lib.elem cred declaredNames;
            message = "${at}.${cred}: guest ${name} does not declare this credential (boot.miniguest.credentials)";
          })
          (lib.attrNames guest.credentials))
      cfg)
    ++ lib.mapAttrsToList
      (name: g: {
        assertion = {
          libvirt = config.virtualisation.libvirtd.enable;
          lxc = config.virtualisation.lxc.enable;
          nspawn = true;
        }.${g.backend};
        message = "miniguests.${name}: a guest defined in ${g.backend} needs ${{
          libvirt = "virtualisation.libvirtd.enable";
          lxc = "virtualisation.lxc.enable";
          nspawn = "";
        }.${g.backend}} = true on this host";
      })
      declared
    ++ lib.optionals (containers != { }) [
      {
        assertion = lib.any (rootRange "startUid") root.subUidRanges
          && lib.any (rootRange "startGid") root.subGidRanges;
        message = "miniguests: container guests (${lib.concatStringsSep ", " (lib.attrNames containers)}) run with root mapped to a subordinate range; give root one of 65536 ids that does not hold id 0, e.g. users.users.root.subUidRanges = [ { startUid = 1000000; count = 65536; } ] and users.users.root.subGidRanges = [ { startGid = 1000000; count = 65536; } ]";
      }
    ];
  };
}
