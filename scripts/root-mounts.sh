# shellcheck shell=bash
# Sourced by fresh-root.sh and second-host.sh: the file systems a clean
# Debian root needs once a new mount namespace holds it, and the step into
# it. Run as pid 1 of new mount and pid namespaces.

# mount_root ROOT: / a mount point (libvirt's QEMU namespace wants one),
# proc, sysfs, cgroup2, a /dev of its own and a fresh /run.
mount_root() {
  local root=$1 node major minor
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
  # A /dev of its own: binding the machine's in would let setup's
  # `chgrp kvm /dev/kvm` change the machine's node. No /dev/kvm: TCG.
  mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
  while read -r node major minor; do
    mknod -m 0666 "$root/dev/$node" c "$major" "$minor"
  done <<NODES
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
NODES
  mkdir -p "$root/dev/net" "$root/dev/pts" "$root/dev/shm"
  mknod -m 0666 "$root/dev/net/tun" c 10 200
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
  # A file bound onto the new instance's ptmx, not a link: QEMU under
  # libvirt cannot make its console's pty through a link.
  touch "$root/dev/ptmx"
  mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
  ln -s /proc/self/fd "$root/dev/fd"
  ln -s /proc/self/fd/0 "$root/dev/stdin"
  ln -s /proc/self/fd/1 "$root/dev/stdout"
  ln -s /proc/self/fd/2 "$root/dev/stderr"
  mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
}

# enter_root ROOT: pivot_root rather than chroot: the kernel refuses a
# chrooted process a user namespace, which LXC and nspawn make for a
# mapped root.
enter_root() {
  cd "$1"
  mkdir -p .old-root
  pivot_root . .old-root
  umount -l /.old-root
  rmdir /.old-root
}
