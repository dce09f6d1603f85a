# sudo, the setuid wrappers and PAM as NixOS declares them
# (nixos/modules/security/sudo.nix, wrappers/default.nix, pam.nix), for the
# systemd stand-in: `security.sudo` writes /etc/sudoers from its rules and
# asks for a setuid `sudo` in /run/wrappers/bin and a PAM service; the
# stand-in's stage 2 makes the wrappers (nix/model/systemd.nix). The
# package is Debian's sudo (see pkgs.nix).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.security.sudo;

  # sudo.nix's rendering of a rule: a user or group, the host, whom it runs
  # as, then the commands with their tags.
  userString = u: if lib.isInt u then "#${toString u}" else u;
  groupString = g: if lib.isInt g then "%#${toString g}" else "%${g}";
  tags = options: "${lib.concatStringsSep ":" options}${lib.optionalString (options != [ ]) ":"} ";
  commandsString = commands: lib.concatStringsSep ", "
    (map (c: if lib.isString c then c else "${tags c.options}${c.command}") commands);
  ruleLines = rule:
    map (u: "${userString u}     ${rule.host}=(${rule.runAs})    ${commandsString rule.commands}") rule.users
    ++ map (g: "${groupString g}  ${rule.host}=(${rule.runAs})    ${commandsString rule.commands}") rule.groups;

  command = types.submodule {
    options = {
      command = mkOption { type = types.str; };
      options = mkOption {
        type = types.listOf (types.enum [
          "NOPASSWD" "PASSWD" "NOEXEC" "EXEC" "SETENV" "NOSETENV" "LOG_INPUT" "NOLOG_INPUT"
          "LOG_OUTPUT" "NOLOG_OUTPUT" "MAIL" "NOMAIL" "FOLLOW" "NOFLLOW" "INTERCEPT" "NOINTERCEPT"
        ]);
        default = [ ];
      };
    };
  };
  rule = types.submodule {
    options = {
      users = mkOption { type = types.listOf (types.either types.str types.int); default = [ ]; };
      groups = mkOption { type = types.listOf (types.either types.str types.int); default = [ ]; };
      host = mkOption { type = types.str; default = "ALL"; };
      runAs = mkOption { type = types.str; default = "ALL:ALL"; };
      commands = mkOption { type = types.listOf (types.either types.str command); };
    };
  };
  defaultRule = { users ? [ ], groups ? [ ], opts ? [ ] }: [{
    inherit users groups;
    commands = [{ command = "ALL"; options = opts ++ cfg.defaultOptions; }];
  }];

  # pam.nix's rules for a service, as far as the services here ask: with
  # or without pam_unix's password check (unixAuth). pam_systemd, which
  # startSession adds, needs logind, which the stand-in lacks.
  pamService = svc: ''
    # Account management.
    account required ${pkgs.pam}/lib/security/pam_unix.so

    # Authentication management.
    ${lib.optionalString svc.unixAuth "auth sufficient ${pkgs.pam}/lib/security/pam_unix.so likeauth try_first_pass"}
    auth required ${pkgs.pam}/lib/security/pam_deny.so

    # Password management.
    password sufficient ${pkgs.pam}/lib/security/pam_unix.so nullok yescrypt

    # Session management.
    session required ${pkgs.pam}/lib/security/pam_env.so conffile=/etc/pam/environment readenv=0
    session required ${pkgs.pam}/lib/security/pam_unix.so
  '';
in
{
  options = {
    security.sudo = {
      enable = mkOption { type = types.bool; default = true; };
      package = mkOption { type = types.package; default = pkgs.sudo; };
      defaultOptions = mkOption { type = types.listOf types.str; default = [ "SETENV" ]; };
      wheelNeedsPassword = mkOption { type = types.bool; default = true; };
      execWheelOnly = mkOption { type = types.bool; default = false; };
      configFile = mkOption { type = types.lines; };
      extraRules = mkOption { type = types.listOf rule; default = [ ]; };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };

    security.wrappers = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = {
          source = mkOption { type = types.path; };
          owner = mkOption { type = types.str; };
          group = mkOption { type = types.str; };
          setuid = mkOption { type = types.bool; default = false; };
          setgid = mkOption { type = types.bool; default = false; };
          permissions = mkOption { type = types.str; default = "u+rx,g+x,o+x"; };
        };
      });
    };

    security.pam.services = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = {
          sshAgentAuth = mkOption { type = types.bool; default = false; };
          usshAuth = mkOption { type = types.bool; default = false; };
          unixAuth = mkOption { type = types.bool; default = true; };
          startSession = mkOption { type = types.bool; default = false; };
          showMotd = mkOption { type = types.bool; default = false; };
        };
      });
    };
  };

  config = lib.mkMerge [
    {
      # pam.nix: what any service falls back to, pam_env's file, and
      # pam_unix's helper, setuid (Debian built PAM to find it in
      # /usr/sbin, where the stand-in's stage 2 links the wrapper).
      security.pam.services.other = { };
      security.wrappers.unix_chkpwd = {
        setuid = true;
        owner = "root";
        group = "root";
        source = "${pkgs.pam}/bin/unix_chkpwd";
      };
      environment.etc = lib.mapAttrs' (name: svc: lib.nameValuePair "pam.d/${name}" { text = pamService svc; })
        config.security.pam.services // {
        "pam/environment".text = "";
      };
    }

    (lib.mkIf cfg.enable {
      security.sudo.extraRules = lib.mkMerge [
        (lib.mkOrder 400 (defaultRule { users = [ "root" ]; }))
        (lib.mkOrder 600 (defaultRule {
          groups = [ "wheel" ];
          opts = lib.optional (!cfg.wheelNeedsPassword) "NOPASSWD";
        }))
      ];
      security.sudo.configFile = lib.concatStringsSep "\n" (lib.filter (s: s != "") [
        ''
          # Don't edit this file. Set the NixOS options ‘security.sudo.configFile’
          # or ‘security.sudo.extraRules’ instead.
        ''
        (lib.concatStringsSep "\n" (lib.concatMap ruleLines (lib.filter (r: r.commands != [ ]) cfg.extraRules)))
        "\n"
        (lib.optionalString (cfg.extraConfig != "") ''
          # extraConfig
          ${cfg.extraConfig}
        '')
      ]);
      security.wrappers = lib.genAttrs [ "sudo" "sudoedit" ] (program: {
        source = "${cfg.package}/bin/${program}";
        owner = "root";
        group = if cfg.execWheelOnly then "wheel" else "root";
        setuid = true;
        permissions = if cfg.execWheelOnly then "u+rx,g+x" else "u+rx,g+x,o+x";
      });
      security.pam.services.sudo = { sshAgentAuth = true; usshAuth = true; };
      environment.etc.sudoers = { text = cfg.configFile; mode = "0440"; };
    })
  ];
}
