# NixOS's hypervisor and guest-agent modules, as far as Miniguest's
# modules use them, with NixOS's names, types and defaults:
# - nixos/modules/virtualisation/libvirtd.nix: libvirt is built with
#   --sysconfdir=/var/lib, so libvirtd reads its hooks from
#   /var/lib/libvirt/hooks; the libvirtd-config unit empties each
#   hooks/DRIVER.d at every start and links in what `hooks.DRIVER` declares,
#   and vhost-user back ends are found through `qemu.vhostUserPackages`.
# - nixos/modules/virtualisation/lxc.nix: the tools and /etc/lxc; no unit
#   starts containers (`lxc-autostart` is run by nothing).
# - nixos/modules/system/boot/systemd/nspawn.nix: `systemd.nspawn.<name>`,
#   written as /etc/systemd/nspawn/<name>.nspawn.
# - nixos/modules/virtualisation/qemu-guest-agent.nix.
# /etc itself is NixOS's to write: what is not in `environment.etc` is not
# there, and /etc/systemd/system is one link into the store
# (`etcReadOnly`, for the tests).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types;
  libvirtd = config.virtualisation.libvirtd;
  lxc = config.virtualisation.lxc;
  hooks = mkOption { type = types.attrsOf types.path; default = { }; };
  unitSection = mkOption { type = types.attrsOf types.unspecified; default = { }; };
  libvirtDir = "libvirt";
in
{
  options = {
    virtualisation.libvirtd = {
      enable = mkOption { type = types.bool; default = false; };
      package = mkOption { type = types.package; default = pkgs.libvirt; };
      qemu.vhostUserPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      hooks = mkOption {
        default = { };
        type = types.submodule {
          options = { daemon = hooks; qemu = hooks; lxc = hooks; libxl = hooks; network = hooks; };
        };
      };
    };

    virtualisation.lxc = {
      enable = mkOption { type = types.bool; default = false; };
      unprivilegedContainers = lib.mkEnableOption "support for unprivileged users to launch containers";
      systemConfig = mkOption { type = types.lines; default = ""; };
      package = mkOption { type = types.package; default = pkgs.lxc; };
      defaultConfig = mkOption { type = types.lines; default = ""; };
      usernetConfig = mkOption { type = types.lines; default = ""; };
      bridgeConfig = mkOption { type = types.lines; default = ""; };
    };

    systemd.nspawn = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = { execConfig = unitSection; filesConfig = unitSection; networkConfig = unitSection; };
      });
    };

    services.qemuGuest = {
      enable = mkOption { type = types.bool; default = false; };
      package = mkOption { type = types.package; default = pkgs.qemu_kvm.ga; };
    };

    # The model's own: the trees of /etc that NixOS makes links into the
    # store, which no unit can write into.
    system.etcReadOnly = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ "/etc/systemd/system" "/etc/systemd/user" "/etc/static" ];
    };
  };

  config = lib.mkMerge [
    (mkIf libvirtd.enable {
      environment.systemPackages = [ libvirtd.package ];
      systemd.services.libvirtd-config = {
        description = "Libvirt Virtual Machine Management Daemon - configuration";
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        script = lib.concatMapStrings
          (driver: ''
            mkdir -p /var/lib/${libvirtDir}/hooks/${driver}.d
            rm -rf /var/lib/${libvirtDir}/hooks/${driver}.d/*
            ${lib.concatStrings (lib.mapAttrsToList
              (name: value: "ln -s --force ${value} /var/lib/${libvirtDir}/hooks/${driver}.d/${name}\n")
              libvirtd.hooks.${driver})}
          '')
          (lib.attrNames libvirtd.hooks);
      };
      systemd.services.libvirtd = {
        wantedBy = [ "multi-user.target" ];
        requires = [ "libvirtd-config.service" ];
        after = [ "libvirtd-config.service" ];
        restartIfChanged = false;
      };
      system.build.vhostUserPackages = libvirtd.qemu.vhostUserPackages;
    })

    # nixos/modules/virtualisation/qemu-guest-agent.nix: udev asks for the
    # unit when the agent's port appears.
    (mkIf config.services.qemuGuest.enable {
      services.udev.extraRules = ''
        SUBSYSTEM=="virtio-ports", ATTR{name}=="org.qemu.guest_agent.0", TAG+="systemd" ENV{SYSTEMD_WANTS}="qemu-guest-agent.service"
      '';
      systemd.services.qemu-guest-agent = {
        description = "Run the QEMU Guest Agent";
        serviceConfig = {
          ExecStart = "${config.services.qemuGuest.package}/bin/qemu-ga --statedir /run/qemu-ga";
          Restart = "always";
          RestartSec = 0;
          RuntimeDirectory = "qemu-ga";
          RuntimeDirectoryMode = "0755";
        };
      };
    })

    (mkIf lxc.enable {
      environment.systemPackages = [ lxc.package ];
      environment.etc."lxc/lxc.conf".text = lxc.systemConfig;
      environment.etc."lxc/default.conf".text = lxc.defaultConfig;
    })

    {
      environment.etc = lib.mapAttrs'
        (name: _: lib.nameValuePair "systemd/nspawn/${name}.nspawn" { text = ""; })
        config.systemd.nspawn;
    }
  ];
}
