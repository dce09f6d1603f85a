# The model's nixos/lib/utils.nix: the helpers NixOS's file system and
# stage 1 modules use, with NixOS's semantics (which file systems stage 1
# mounts, which mount must come before which, systemd's unit names for
# paths).
{ lib }:
rec {
  # Closed under parents, as NixOS keeps it.
  pathsNeededForBoot = [ "/" "/nix" "/nix/store" "/var" "/var/log" "/var/lib" "/var/lib/nixos" "/etc" "/usr" ];
  fsNeededForBoot = fs: fs.neededForBoot || lib.elem fs.mountPoint pathsNeededForBoot;

  # Whether file system `b` must be mounted after `a`: `a` holds b's mount
  # point, its device or one of its `depends`. Paths end in "/" before the
  # comparison, so that /aaa does not count as a parent of /aaaa.
  fsBefore = a: b:
    let
      dir = p: if lib.hasSuffix "/" p then p else "${p}/";
      holds = path: lib.hasPrefix (dir a.mountPoint) (dir path);
    in
    holds b.mountPoint || holds (toString b.device) || lib.any holds b.depends;

  # systemd.unit(5)'s escaping of a path: "/" becomes "-", anything but
  # ASCII letters, digits, ":", "_" and "." (not leading) a \xNN escape, the
  # root a single "-".
  escapeSystemdPath = path:
    let
      steps = lib.filter (s: s != "" && s != ".") (lib.splitString "/" path);
      special = lib.stringToCharacters " !\"#$%&'()*+,;<=>?@[\\]^`{|}~-";
      escaped = lib.strings.escapeC special (lib.concatStringsSep "/" steps);
      leadingDot = if lib.hasPrefix "." escaped then "\\x2e" + lib.removePrefix "." escaped else escaped;
    in
    if steps == [ ] then "-" else builtins.replaceStrings [ "/" ] [ "-" ] leadingDot;
}
