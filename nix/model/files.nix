# What the stand-in guest boots, when the test harness has put it beside the
# model (scripts/standin-flake.sh does): Debian's kernel, a static busybox,
# the kernel modules stage 1 loads, Debian's qemu-ga with its libraries,
# and for the systemd stand-in Debian 13's systemd and Nix. Without them the model still evaluates; only building a
# guest's toplevel needs them.
let
  dir = ./files;
  missing = name: builtins.toFile "missing-${name}" "run scripts/standin-flake.sh to provide the stand-in's ${name}";
  pick = name: if builtins.pathExists (dir + "/${name}") then dir + "/${name}" else missing name;
in
{
  kernel = pick "vmlinuz";
  busybox = pick "busybox";
  modules = pick "modules";
  qemuGa = pick "qemu-ga";
  # Debian 13's systemd, util-linux's mount and Nix, with their libraries
  # (only where a systemd stand-in was asked for).
  trixie = pick "trixie";
}
