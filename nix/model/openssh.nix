# services.openssh as nixos/modules/services/networking/ssh/sshd.nix
# declares it, for the systemd stand-in: sshd_config from `settings` and
# the lines the module adds (ports, AuthorizedKeysFile, host keys), each
# user's keys in /etc/ssh/authorized_keys.d (copies, mode 0444), the
# privilege separation user, sshd-keygen and sshd as its units, and PAM's
# sshd service. The package is Debian's OpenSSH (see pkgs.nix); what it
# needs of Debian's paths is the one activation snippet below. Left out:
# the SFTP subsystem (Debian ships sftp-server apart), startWhenNeeded's
# socket, and the firewall.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.openssh;

  # sshd.nix's settings format: yes/no for booleans, lists joined with
  # spaces or commas, as sshd_config(5) reads each key.
  commaSeparated = [ "Ciphers" "KexAlgorithms" "Macs" ];
  valueOf = k: v:
    if builtins.isBool v then (if v then "yes" else "no")
    else if builtins.isList v then lib.concatStringsSep (if lib.elem k commaSeparated then "," else " ") v
    else toString v;
  settingsText = lib.concatStrings (lib.mapAttrsToList (k: v: "${k} ${valueOf k v}\n")
    (lib.filterAttrs (_: v: v != null) cfg.settings));
  moduleLines = lib.concatStringsSep "\n" ([ "AddressFamily any" ]
    ++ map (p: "Port ${toString p}") cfg.ports
    ++ [ "AuthorizedKeysFile ${toString cfg.authorizedKeysFiles}" ]
    ++ map (k: "HostKey ${k.path}") cfg.hostKeys);
  sshdConfig = pkgs.writeText "sshd.conf-final" (settingsText + moduleLines + "\n" + cfg.extraConfig + "\n");

  usersWithKeys = lib.filter (u: u.openssh.authorizedKeys.keys != [ ] || u.openssh.authorizedKeys.keyFiles != [ ])
    (lib.attrValues config.users.users);
  authKeysFile = u: lib.nameValuePair "ssh/authorized_keys.d/${u.name}" {
    mode = "0444";
    source = pkgs.writeText "${u.name}-authorized_keys" ''
      ${lib.concatStringsSep "\n" u.openssh.authorizedKeys.keys}
      ${lib.concatMapStrings (f: lib.readFile f + "\n") u.openssh.authorizedKeys.keyFiles}
    '';
  };
in
{
  options = {
    services.openssh = {
      enable = lib.mkEnableOption "the OpenSSH secure shell daemon";
      package = mkOption { type = types.package; default = pkgs.openssh; };
      ports = mkOption { type = types.listOf types.port; default = [ 22 ]; };
      authorizedKeysInHomedir = mkOption { type = types.bool; default = true; };
      authorizedKeysFiles = mkOption { type = types.listOf types.str; default = [ ]; };
      generateHostKeys = mkOption { type = types.bool; default = true; internal = true; };
      hostKeys = mkOption {
        type = types.listOf types.attrs;
        default = [
          { type = "rsa"; bits = 4096; path = "/etc/ssh/ssh_host_rsa_key"; }
          { type = "ed25519"; path = "/etc/ssh/ssh_host_ed25519_key"; }
        ];
      };
      settings = mkOption {
        default = { };
        type = types.submodule {
          freeformType = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]));
          options = {
            PasswordAuthentication = mkOption { type = types.nullOr types.bool; default = true; };
            KbdInteractiveAuthentication = mkOption { type = types.nullOr types.bool; default = true; };
            PermitRootLogin = mkOption { type = types.nullOr types.str; default = "prohibit-password"; };
            UsePAM = mkOption { type = types.nullOr types.bool; default = true; };
            StrictModes = mkOption { type = types.nullOr types.bool; default = true; };
            X11Forwarding = mkOption { type = types.nullOr types.bool; default = false; };
            LogLevel = mkOption { type = types.nullOr types.str; default = "INFO"; };
            UseDns = mkOption { type = types.nullOr types.bool; default = false; };
          };
        };
      };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };

    users.users = mkOption {
      type = types.attrsOf (types.submodule {
        options.openssh.authorizedKeys = {
          keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
          keyFiles = mkOption { type = types.listOf types.path; default = [ ]; };
        };
      });
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.sshd = {
      isSystemUser = true;
      group = "sshd";
      description = "SSH privilege separation user";
    };
    users.groups.sshd = { };

    services.openssh.authorizedKeysFiles =
      lib.optional cfg.authorizedKeysInHomedir "%h/.ssh/authorized_keys"
      ++ [ "/etc/ssh/authorized_keys.d/%u" ];

    environment.etc = lib.listToAttrs (map authKeysFile usersWithKeys) // {
      "ssh/moduli".source = "${cfg.package}/etc/ssh/moduli";
      "ssh/sshd_config".source = sshdConfig;
    };

    # Not NixOS's: Debian's sshd runs its session programs from
    # /usr/lib/openssh and wants /run/sshd for privilege separation, where
    # nixpkgs' build uses its own store path and /var/empty.
    system.activationScripts.openssh-debian-paths = ''
      mkdir -p /usr/lib /run/sshd
      ln -sfn ${cfg.package}/libexec/openssh /usr/lib/openssh
      chmod 0755 /run/sshd
    '';

    systemd.services.sshd-keygen = lib.mkIf cfg.generateHostKeys {
      description = "SSH Host Keys Generation";
      wantedBy = [ "multi-user.target" ];
      unitConfig.ConditionFileNotEmpty = map (k: "|!${k.path}") cfg.hostKeys;
      serviceConfig.Type = "oneshot";
      path = [ cfg.package ];
      script = lib.concatMapStrings (k: ''
        if ! [ -s "${k.path}" ]; then
          if ! [ -h "${k.path}" ]; then
            rm -f "${k.path}"
          fi
          mkdir -p "$(dirname '${k.path}')"
          chmod 0755 "$(dirname '${k.path}')"
          ssh-keygen -t "${k.type}" ${lib.optionalString (k ? bits) "-b ${toString k.bits}"} -f "${k.path}" -N ""
        fi
      '') cfg.hostKeys;
    };

    systemd.services.sshd = {
      description = "SSH Daemon";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" "sshd-keygen.service" ];
      wants = lib.optional cfg.generateHostKeys "sshd-keygen.service";
      path = [ cfg.package ];
      serviceConfig = {
        Type = "notify-reload";
        Restart = "always";
        ExecStart = "${cfg.package}/bin/sshd -D -f /etc/ssh/sshd_config";
        KillMode = "process";
      };
    };

    security.pam.services.sshd = lib.mkIf (cfg.settings.UsePAM == true) {
      startSession = true;
      showMotd = true;
      unixAuth = cfg.settings.PasswordAuthentication == true;
    };
  };
}
