# An LXC container. Run `miniguest create container`: it maps the
# container's root to root's range in /etc/subuid, so the guest cannot
# write to the host's store.
{ ... }:
{
  boot.miniguest = {
    enable = true;
    guestType = "lxc";
  };

  networking.hostName = "container";
  system.stateVersion = "26.05";
}
