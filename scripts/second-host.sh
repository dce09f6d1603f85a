#!/usr/bin/env bash
# A second host on this machine, for the tests of `--host`: a clean
# Debian 12 root with its own /nix/store (Debian's Nix), sshd and LXC,
# in mount, pid and network namespaces of its own, reached from here over
# a veth pair. Nothing of this machine's store or configuration is in it.
#
#   second-host.sh start DIR   # prints the address; DIR holds the root,
#                              # the ssh keys and an ssh_config for it
#   second-host.sh stop DIR
#
# The root's tarball is cached (a week) in /var/cache/miniguest-test/
# second-host. Run as root.
set -euo pipefail

here_ip=10.213.0.1
host_ip=10.213.0.2
veth=mg2host0

if [ "${1:-}" = --inside ]; then
  # Pid 1 of the new namespaces: the root's file systems, then sshd.
  root=$2
  # shellcheck source=scripts/root-mounts.sh
  . "$(dirname "$0")/root-mounts.sh"
  mount_root "$root"
  enter_root "$root"
  mkdir -p /run/sshd
  exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
fi

action=${1:-}
dir=${2:-}
case "$action" in
  start | stop) [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; } ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "second-host: run as root" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ "$action" = stop ]; then
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/pid"
  fi
  ip link del "$veth" 2>/dev/null || true
  rm -rf --one-file-system "$dir/root"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
fi
# Nix, sshd and LXC, as a user of the hypervisor host would install them
# from Debian; root may log in with a key only. It is a build host too.
options=(--variant=minbase --include=nix-bin,openssh-server,lxc,iproute2,ca-certificates,jq,patchelf
  --customize-hook='printf "%s\n" "PermitRootLogin prohibit-password" "PasswordAuthentication no" "UseDNS no" > "$1/etc/ssh/sshd_config.d/second-host.conf"'
  --customize-hook='chroot "$1" ssh-keygen -A'
  --customize-hook='echo "root:100000:65536" > "$1/etc/subuid"; echo "root:100000:65536" > "$1/etc/subgid"'
  # A build host as Nix's multi-user setup leaves one (Debian's nix-bin
  # names the nixbld group but does not make it), offline as this machine,
  # and without the sandbox, as the tests' Nix here: the model's builders
  # run the host's /bin/sh and tools (jq, patchelf), which a sandbox does
  # not have.
  --customize-hook='chroot "$1" sh -c "groupadd -r nixbld && for i in 1 2 3 4; do useradd -r -g nixbld -G nixbld -d /var/empty -s /usr/sbin/nologin nixbld\$i; done"'
  --customize-hook='mkdir -p "$1/etc/nix" && printf "%s\n" "substituters =" "sandbox = false" >> "$1/etc/nix/nix.conf"')
cache=/var/cache/miniguest-test/second-host
mkdir -p "$cache"
find "$cache" -name '*.tar' -mtime +7 -delete
key=$(printf '%s\n' "${options[@]}" | sha256sum | cut -c1-16)
tarball=$cache/root-$key.tar
if [ ! -f "$tarball" ]; then
  echo "second-host: building the root" >&2
  rm -f "$cache"/root-*
  mmdebstrap --quiet "${options[@]}" bookworm "$cache/partial.tar"
  mv "$cache/partial.tar" "$tarball"
fi

"$0" stop "$dir"
mkdir "$dir/root"
tar -C "$dir/root" -xf "$tarball"

# A key for root's login, and what a client needs to check the host's key.
rm -f "$dir/id" "$dir/id.pub"
ssh-keygen -q -t ed25519 -N '' -C second-host -f "$dir/id"
install -d -m 0700 "$dir/root/root/.ssh"
install -m 0600 "$dir/id.pub" "$dir/root/root/.ssh/authorized_keys"
echo "$host_ip $(cut -d' ' -f1,2 "$dir/root/etc/ssh/ssh_host_ed25519_key.pub")" > "$dir/known_hosts"
cat > "$dir/ssh_config" <<EOF
Host $host_ip
  User root
  IdentityFile $dir/id
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
# The same host where nothing listens: a host that cannot be reached.
Host gone
  HostName $host_ip
  Port 1
  BatchMode yes
  ConnectTimeout 5
EOF

unshare --mount --pid --net --uts --fork --kill-child --propagation private \
  bash "$0" --inside "$dir/root" > "$dir/sshd.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/pid"
# The namespaces are the forked child's: wait for it, then wire it up.
child=
for _ in $(seq 50); do
  child=$(pgrep -P "$pid" | head -n 1 || true)
  [ -n "$child" ] && break
  sleep 0.1
done
[ -n "$child" ] || { echo "second-host: it did not start" >&2; cat "$dir/sshd.log" >&2; exit 1; }
ip link add "$veth" type veth peer name eth0 netns "$child"
ip addr add "$here_ip/30" dev "$veth"
ip link set "$veth" up
nsenter --target "$child" --net sh -c "ip link set lo up && ip addr add $host_ip/30 dev eth0 && ip link set eth0 up"
for _ in $(seq 100); do
  if ssh -F "$dir/ssh_config" "$host_ip" true 2>/dev/null; then
    echo "$host_ip"
    exit 0
  fi
  sleep 0.1
done
echo "second-host: sshd did not answer" >&2
cat "$dir/sshd.log" >&2
exit 1
