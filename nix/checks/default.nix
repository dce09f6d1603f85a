# NixOS VM tests (need KVM): the template's guests built with the guest
# module, installed with the CLI, booted under libvirt and LXC, upgraded and
# rolled back; and a declared guest on a NixOS host.
{ pkgs, self }:
let
  guestConfig = extra: { ... }: {
    imports = [ self.nixosModules.guest ];
    boot.miniguest.enable = true;
    fileSystems."/" = { device = "tmpfs"; fsType = "tmpfs"; options = [ "mode=0755" ]; };
    # Announces itself on the serial console so the test can read it.
    systemd.services.hello = {
      wantedBy = [ "multi-user.target" ];
      script = "echo MINIGUEST-GUEST-UP ${extra} > /dev/ttyS0";
    };
    system.stateVersion = "24.11";
  };
  # By path: interpolated, a nixpkgs that is not a store path (a checkout)
  # would first be copied whole into the store.
  guest = extra: (import (pkgs.path + "/nixos/lib/eval-config.nix") {
    inherit (pkgs) lib;
    system = "x86_64-linux";
    modules = [ (guestConfig extra) ];
  }).config.system.build.miniguest;
  v1 = guest "v1";
  v2 = guest "v2";
in
{
  imperative = pkgs.testers.runNixOSTest {
    name = "miniguest-imperative";
    nodes.host = { ... }: {
      imports = [ self.nixosModules.host ];
      virtualisation.libvirtd.enable = true;
      virtualisation.memorySize = 2048;
      environment.systemPackages = [ self.packages.x86_64-linux.miniguest ];
      system.extraDependencies = [ v1 v2 ];
    };
    testScript = ''
      host.wait_for_unit("libvirtd.service")
      # Install by path through a profile, as `install` would after its build.
      host.succeed("mkdir -p /nix/var/nix/profiles/miniguest-profiles /etc/miniguests")
      host.succeed("nix-env -p /nix/var/nix/profiles/miniguest-profiles/g --set ${v1}")
      host.succeed("ln -s /nix/var/nix/profiles/miniguest-profiles/g /etc/miniguests/g")
      host.succeed("miniguest list | grep -q '^g '")
      host.succeed("miniguest create g --define --console-log /tmp/g.log")
      host.succeed("virsh start g")
      host.wait_until_succeeds("grep -q 'MINIGUEST-GUEST-UP v1' /tmp/g.log", timeout=300)
      host.succeed("virsh destroy g")
      host.succeed("nix-env -p /nix/var/nix/profiles/miniguest-profiles/g --set ${v2}")
      host.succeed("virsh start g")
      host.wait_until_succeeds("grep -q 'MINIGUEST-GUEST-UP v2' /tmp/g.log", timeout=300)
      host.succeed("virsh destroy g")
      host.succeed("miniguest rollback g")
      host.succeed("virsh start g")
      host.wait_until_succeeds("grep -q 'MINIGUEST-GUEST-UP v1' /tmp/g.log", timeout=300)
    '';
  };

  declarative = pkgs.testers.runNixOSTest {
    name = "miniguest-declarative";
    nodes.host = { ... }: {
      imports = [ self.nixosModules.host ];
      virtualisation.libvirtd.enable = true;
      virtualisation.memorySize = 2048;
      miniguests.decl = {
        configuration = guestConfig "declared";
        autostart = true;
      };
    };
    testScript = ''
      host.wait_for_unit("miniguest-define-decl.service")
      host.succeed("miniguest list --json | grep -q declarative")
      host.fail("miniguest remove decl")
      host.succeed("virsh dominfo decl")
      # Day two: a second activation redefines the guest in place, and the
      # guest boots again after it.
      host.succeed("systemctl restart miniguest-define-decl.service")
      host.succeed("/run/current-system/bin/switch-to-configuration test")
      host.succeed("systemctl is-active miniguest-define-decl.service")
      host.succeed("virsh start decl || virsh domstate decl | grep -q running")
      host.wait_until_succeeds("virsh domstate decl | grep -q running", timeout=120)
      host.succeed("virsh destroy decl")
      host.succeed("systemctl restart miniguest-define-decl.service")
      host.succeed("virsh start decl")
      host.wait_until_succeeds("virsh domstate decl | grep -q running", timeout=120)
    '';
  };
}
