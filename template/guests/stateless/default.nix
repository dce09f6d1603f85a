# A VM that keeps nothing: its root is a tmpfs, its program comes from the
# host's store. Uncomment the volume to give it persistent /var.
{ ... }:
{
  boot.miniguest = {
    enable = true;
    guestType = "qemu";
    qemu.fsType = "9p"; # or "virtiofs"
    memoryMiB = 1024;
    vcpus = 1;
    # volumes.var = { mountPoint = "/var"; sizeMiB = 2048; };
    # Without `interfaces` the VM gets a network that needs no host setup
    # (libvirt's default network, or user-mode). To reach its SSH from the
    # host under `miniguest run`:
    # interfaces = [ { type = "user"; forwardPorts = [ { host = 2222; guest = 22; } ]; } ];
  };

  fileSystems."/" = {
    device = "tmpfs";
    fsType = "tmpfs";
    options = [ "mode=0755" "size=512M" ];
  };

  networking.hostName = "stateless";
  services.getty.autologinUser = "root";
  system.stateVersion = "26.05";
}
