#!/usr/bin/env bash
# Benchmarks (figures printed, not asserted), each against a baseline
# measured in the same run:
#   1. CLI overhead against bare nix build + nix-env --set; list with 1,000 guests
#   2. boot to the guest's marker: `miniguest run` and libvirt (create --define
#      + start) against microvm.nix's QEMU shape for the same kernel, initrd
#      and shares, for 9p and virtiofs; LXC and nspawn start
#   3. disk added per guest for 50 guests sharing one closure vs a raw image
#   4. status of 50 defined guests (libvirt, LXC) vs the hypervisor's own listing
#   5. day three: start to ready (libvirt, LXC) vs the hypervisor's own start
#      polled for the console marker; upgrade --switch vs --restart to ready
#   6. the closure-only store view of 1,000 paths vs the full store's one bind
#   7. --host: install against nix copy + ssh nix-env --set by hand; a
#      no-change reinstall (time, bytes sent); status of 3 hosts x 20 guests
#   8. real systemd against the busybox stand-in: in an LXC container (start
#      to ready, stop, idle cgroup memory); under nspawn (start to ready);
#      in a VM (systemd stage 1 too) on libvirt (start to
#      ready, stop, idle QEMU RSS), under `run` and microvm.nix's QEMU
#      shape (to the console's multi-user line)
# Run as root on Debian 12.
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${BENCH_ROUNDS:-3}
# BENCH_SECTIONS="2 4" runs only those.
sections=" ${BENCH_SECTIONS:-1 2 3 4 5 6 7 8} "
want() { [[ "$sections" == *" $1 "* ]]; }

bash scripts/setup-host.sh >/dev/null
bash scripts/services.sh start >/dev/null
work=$(mktemp -d /tmp/miniguest-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
  for d in $(virsh -c qemu:///system list --all --name | grep '^bench-' || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine "$d" >/dev/null 2>&1 || true
  done
  bash scripts/services.sh stop >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if want 1; then
echo "== 1. CLI overhead"
cargo bench --quiet --bench overhead 2>/dev/null | grep -v '^$'
fi

if want 6; then
echo "== 6. closure-only store view"
cargo bench --quiet --bench store_view 2>/dev/null | grep -v '^$'
fi

cargo build --release --quiet
mg="$root/target/release/miniguest"
export MINIGUEST_GUESTS_DIR="$work/guests" MINIGUEST_PROFILES_DIR="$work/profiles" MINIGUEST_STATE_DIR="$work/state"
bash scripts/standin-flake.sh "$work/flake"
now() { date +%s.%N; }
# The busybox stand-in's marker, or MARKER (a grep pattern).
wait_marker() { # log, deadline in seconds
  for _ in $(seq $(( $2 * 50 ))); do grep -q "${MARKER:-STANDIN-DONE}" "$1" 2>/dev/null && return 0; sleep 0.02; done
  echo "no marker in $1" >&2; return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Runs "$@" in a process group of its own, with the console in $1's log,
# and prints the seconds until the guest's marker; then ends the group.
time_to_marker() { # log command…
  local log=$1 t0 pgid; shift
  rm -f "$log"
  t0=$(now)
  setsid "$@" >/dev/null 2>&1 &
  pgid=$!
  wait_marker "$log" 120
  echo "$(now) - $t0" | bc
  kill -TERM -- -"$pgid" 2>/dev/null || true
  wait "$pgid" 2>/dev/null || true
}
virtiofsd_bin=$(command -v virtiofsd || ls /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd 2>/dev/null | head -1)

# microvm.nix's QEMU runner (lib/runners/qemu.nix), rebuilt for this guest
# on x86_64 with shares: `-M microvm` with pcie=on, usb=off, acpi=on,
# rtc=on, mem-merge=on; -nodefaults -no-user-config -no-reboot;
# virtio-rng-pci and i8042; memfd-backed memory for the shares (it adds
# one for 9p too); the shares as virtio-9p-pci or vhost-user-fs-pci;
# "earlyprintk=ttyS0 console=ttyS0 reboot=t panic=-1" before the guest's
# own parameters. Under TCG, as on these machines: accel=tcg and -cpu max
# (the runner's -cpu host needs KVM), pit and pic left on (pit=off,pic=off
# hangs the kernel under TCG).
microvm_nix() { # attr out log
  local attr=$1 out=$2 log=$3 cmdline shares=()
  cmdline=$(jq -r '.kernelParams | join(" ")' "$out/miniguest.json")
  if [ "$attr" = vmfs ]; then
    rm -f "$work"/mv-*.sock
    "$virtiofsd_bin" --socket-path="$work/mv-store.sock" -o source=/nix/store >/dev/null 2>&1 &
    "$virtiofsd_bin" --socket-path="$work/mv-boot.sock" -o source="$out/boot" >/dev/null 2>&1 &
    while [ ! -S "$work/mv-store.sock" ] || [ ! -S "$work/mv-boot.sock" ]; do sleep 0.01; done
    shares=(-chardev "socket,id=fs0,path=$work/mv-store.sock" -device vhost-user-fs-pci,chardev=fs0,tag=nix-store
      -chardev "socket,id=fs1,path=$work/mv-boot.sock" -device vhost-user-fs-pci,chardev=fs1,tag=boot)
  else
    shares=(-fsdev local,id=fs0,path=/nix/store,security_model=none,readonly=on -device virtio-9p-pci,fsdev=fs0,mount_tag=nix-store
      -fsdev "local,id=fs1,path=$out/boot,security_model=none,readonly=on" -device virtio-9p-pci,fsdev=fs1,mount_tag=boot)
  fi
  qemu-system-x86_64 -name "$attr" -M microvm,accel=tcg,acpi=on,mem-merge=on,pcie=on,rtc=on,usb=off \
    -m 256 -smp 1 -nodefaults -no-user-config -no-reboot -kernel "$out/kernel" -initrd "$out/initrd" \
    -serial "file:$log" -device virtio-rng-pci -cpu max -device i8042 \
    -append "earlyprintk=ttyS0 console=ttyS0 reboot=t panic=-1 $cmdline" -nographic \
    -numa node,memdev=mem -object memory-backend-memfd,id=mem,size=256M,share=on "${shares[@]}"
}

libvirt_boot() { # name log: create --define, start, to the marker; "total define start"
  local name=$1 log=$2 t0 t1 t2 t
  rm -f "$log"
  t0=$(now)
  "$mg" create "$name" --define --network none --console-log "$log" >/dev/null 2>&1
  t1=$(now)
  "$mg" start "$name" >/dev/null
  t2=$(now)
  wait_marker "$log" 120
  t=$(echo "$(now) - $t0" | bc)
  "$mg" stop --force "$name" >/dev/null
  virsh -c qemu:///system undefine "$name" >/dev/null
  echo "$t $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc)"
}

if want 2; then
boot_rounds=$(( rounds > 5 ? rounds : 5 ))
echo "== 2. boot to the guest's marker, median of $boot_rounds (TCG: $(grep -qE 'vmx|svm' /proc/cpuinfo && echo no || echo yes)); no network on any"
export -f microvm_nix
export work virtiofsd_bin
for attr in vm9p vmfs; do
  name="bench-$attr"
  "$mg" install -n "$name" "path:$work/flake#$attr" >/dev/null
  out=$(readlink -f "$work/guests/$name")
  base=(); run=(); lv=(); lv_define=(); lv_start=()
  for i in $(seq "$boot_rounds"); do
    base+=("$(time_to_marker "$work/base.log" bash -c 'microvm_nix "$0" "$1" "$2"' "$attr" "$out" "$work/base.log")")
    run+=("$(time_to_marker "$work/run.log" "$mg" run "$name" --network none --console-log "$work/run.log")")
    read -r total define start < <(libvirt_boot "$name" "$work/lv.log")
    lv+=("$total"); lv_define+=("$define"); lv_start+=("$start")
  done
  b=$(printf '%s\n' "${base[@]}" | median)
  r=$(printf '%s\n' "${run[@]}" | median)
  l=$(printf '%s\n' "${lv[@]}" | median)
  printf '%-5s microvm.nix shape %5.2f s | miniguest run %5.2f s, ratio %.3f (target <= 1.00) | create --define + start %5.2f s, ratio %.3f (target <= 1.05)\n' \
    "$attr" "$b" "$r" "$(echo "$r / $b" | bc -l)" "$l" "$(echo "$l / $b" | bc -l)"
  printf '      libvirt steps: create --define %4.0f ms, start %4.0f ms (libvirtd starting QEMU), then the boot\n' \
    "$(echo "$(printf '%s\n' "${lv_define[@]}" | median) * 1000" | bc)" "$(echo "$(printf '%s\n' "${lv_start[@]}" | median) * 1000" | bc)"
done

"$mg" install -n bench-ct "path:$work/flake#ct" >/dev/null
"$mg" create bench-ct --define --lxcpath "$work/lxc" --console-log "$work/ct.log" 2>/dev/null
lxc=(); nsp=()
script=$("$mg" create -t nspawn bench-ct)
for i in $(seq "$rounds"); do
  t0=$(now); lxc-start -P "$work/lxc" -n bench-ct -F >/dev/null; lxc+=("$(echo "$(now) - $t0" | bc)")
  t0=$(now); sh -c "$script" >/dev/null 2>&1; nsp+=("$(echo "$(now) - $t0" | bc)")
done
printf 'lxc      start to marker and exit %6.3f s\n' "$(printf '%s\n' "${lxc[@]}" | median)"
printf 'nspawn   start to marker and exit %6.3f s\n' "$(printf '%s\n' "${nsp[@]}" | median)"

fi

if want 3; then
echo "== 3. footprint: 50 guests sharing one closure"
before=$(mktemp); after=$(mktemp)
ls /nix/store | sort > "$before"
for i in $(seq 50); do
  sed -i "s/\"version\":\"[^\"]*\"/\"version\":\"fp$$-$i\"/" "$work/flake/params.json"
  "$mg" install -n "bench-fp$i" "path:$work/flake#vm9p" >/dev/null 2>&1
done
ls /nix/store | sort > "$after"
added=0
for p in $(comm -13 "$before" "$after"); do
  case "$p" in *.drv|*-source) continue ;; esac   # build recipes and flake sources, not guests
  added=$(( added + $(du -s --block-size=1 "/nix/store/$p" | cut -f1) ))
done
links=$(du -s --block-size=1 "$work/profiles" "$work/guests" | awk '{s+=$1} END {print s}')
closure=$(nix path-info -S "$(readlink -f "$work/guests/bench-fp1")" | awk '{print $2}')
per_guest=$(( (added + links) / 50 ))
printf 'added per guest %d bytes (store %d + links %d over 50)\n' "$per_guest" "$added" "$links"
printf 'one guest closure %d bytes = a raw disk image at least that size\n' "$closure"
printf 'ratio per guest / raw image %.4f\n' "$(echo "$per_guest / $closure" | bc -l)"

fi

if want 4; then
echo "== 4. status of 50 defined guests (median of $rounds)"
vms=(); cts=()
for i in $(seq 50); do
  "$mg" install -n "bench-sv$i" "path:$work/flake#vm9p" >/dev/null 2>&1
  "$mg" create "bench-sv$i" --define >/dev/null 2>&1
  "$mg" install -n "bench-sc$i" "path:$work/flake#ct" >/dev/null 2>&1
  "$mg" create "bench-sc$i" --define --lxcpath "$work/lxc" >/dev/null 2>&1
  vms+=("bench-sv$i"); cts+=("bench-sc$i")
done
for set in libvirt lxc; do
  ours=(); theirs=()
  for i in $(seq "$rounds"); do
    if [ $set = libvirt ]; then
      t0=$(now); "$mg" status --json "${vms[@]}" >/dev/null; ours+=("$(echo "$(now) - $t0" | bc)")
      t0=$(now); virsh -c qemu:///system list --all --name >/dev/null; theirs+=("$(echo "$(now) - $t0" | bc)")
    else
      t0=$(now); "$mg" status --json "${cts[@]}" >/dev/null; ours+=("$(echo "$(now) - $t0" | bc)")
      t0=$(now); lxc-ls -P "$work/lxc" -f >/dev/null; theirs+=("$(echo "$(now) - $t0" | bc)")
    fi
  done
  o=$(printf '%s\n' "${ours[@]}" | median); t=$(printf '%s\n' "${theirs[@]}" | median)
  printf '%-8s miniguest status %5.0f ms (target < 300)   %s listing %5.0f ms   ratio %.2f\n' \
    "$set" "$(echo "$o * 1000" | bc)" "$([ $set = libvirt ] && echo virsh || echo lxc-ls)" "$(echo "$t * 1000" | bc)" "$(echo "$o / $t" | bc -l)"
done
fi

if want 5; then
ready_rounds=$(( rounds > 5 ? rounds : 5 ))
echo "== 5. day three (median of $ready_rounds)"
set_version() { printf '{"version":"%s"}\n' "$1" > "$work/flake/params.json"; }
# A version's output built before it is timed: both upgrades then cost
# the same evaluation, and what differs is what they do to the guest.
prebuild() { nix build --no-link "path:$work/flake#nixosConfigurations.$1.config.system.build.miniguest" 2>/dev/null; }
for backend in libvirt lxc; do
  if [ $backend = libvirt ]; then attr=vmstay; where=(); else attr=ctstay; where=(--lxcpath "$work/lxc-ready"); fi
  name="bench-ready-$backend"
  set_version 1
  "$mg" install --force -n "$name" "path:$work/flake#$attr" >/dev/null 2>&1
  "$mg" create "$name" --define --network none --console-log "$work/$name.log" "${where[@]}" >/dev/null 2>&1
  ours=(); theirs=()
  for i in $(seq "$ready_rounds"); do
    t0=$(now); "$mg" start "$name" --wait=120 >/dev/null; ours+=("$(echo "$(now) - $t0" | bc)")
    "$mg" stop --force "$name" >/dev/null
    rm -f "$work/$name.log"
    t0=$(now)
    if [ $backend = libvirt ]; then
      virsh -c qemu:///system start "$name" >/dev/null
    else
      lxc-start -P "$work/lxc-ready" -n "$name"
    fi
    wait_marker "$work/$name.log" 120
    theirs+=("$(echo "$(now) - $t0" | bc)")
    "$mg" stop --force "$name" >/dev/null
  done
  o=$(printf '%s\n' "${ours[@]}" | median); t=$(printf '%s\n' "${theirs[@]}" | median)
  printf '%-8s start --wait to ready %6.2f s   %s + console marker %6.2f s   ratio %.2f\n' \
    "$backend" "$o" "$([ $backend = libvirt ] && echo 'virsh start' || echo lxc-start)" "$t" "$(echo "$o / $t" | bc -l)"

  # The same change (stage 2 only: a new version), applied both ways.
  "$mg" start "$name" --wait=120 >/dev/null
  switch=(); restart=(); v=1
  for i in $(seq "$ready_rounds"); do
    v=$((v + 1)); set_version "$v"; prebuild "$attr"
    t0=$(now); "$mg" upgrade --switch --wait=120 "$name" >/dev/null; switch+=("$(echo "$(now) - $t0" | bc)")
    v=$((v + 1)); set_version "$v"; prebuild "$attr"
    t0=$(now); "$mg" upgrade --restart --wait=120 "$name" >/dev/null; restart+=("$(echo "$(now) - $t0" | bc)")
  done
  "$mg" stop --force "$name" >/dev/null
  sw=$(printf '%s\n' "${switch[@]}" | median); rs=$(printf '%s\n' "${restart[@]}" | median)
  printf '%-8s upgrade --switch to ready %6.2f s   upgrade --restart to ready %6.2f s   switch %.1fx faster (target >= 3)\n' \
    "$backend" "$sw" "$rs" "$(echo "$rs / $sw" | bc -l)"
done
fi

if want 7; then
echo "== 7. another host (--host): a second host on this machine (scripts/second-host.sh)"
h2=$work/second-host
host=$(bash scripts/second-host.sh start "$h2")
trap 'bash scripts/second-host.sh stop "$h2" >/dev/null 2>&1 || true; cleanup' EXIT
export NIX_SSHOPTS="-F $h2/ssh_config"
ssh_h2() { ssh -F "$h2/ssh_config" "$host" "$@"; }
set_version() { printf '{"version":"%s"}\n' "$1" > "$work/flake/params.json"; }
sent() { cat /sys/class/net/mg2host0/statistics/tx_bytes; }
# Nix 2.8 has no --print-out-paths: built, then asked where.
out_of() {
  local attr="path:$work/flake#nixosConfigurations.ct.config.system.build.miniguest"
  nix build --no-link "$attr" 2>/dev/null && nix path-info "$attr" 2>/dev/null
}
# Once, untimed: Miniguest's own closure reaches the host.
set_version r0; "$mg" --host "$host" install --force "path:$work/flake#ct" -n bench-remote >/dev/null 2>&1
by_hand=(); ours=()
for i in $(seq "$((rounds + 2))"); do
  # A new closure each time, both ways: built, copied, set as the profile.
  set_version "hand-$i"
  t0=$(now)
  out=$(out_of)
  nix --extra-experimental-features nix-command copy --no-check-sigs --to "ssh-ng://$host" "$out" 2>/dev/null
  ssh_h2 nix-env --profile /nix/var/nix/profiles/miniguest-profiles/bench-hand --set "$out" >/dev/null 2>&1
  by_hand+=("$(echo "$(now) - $t0" | bc)")
  set_version "ours-$i"
  t0=$(now)
  "$mg" --host "$host" install --force "path:$work/flake#ct" -n bench-remote >/dev/null 2>&1
  ours+=("$(echo "$(now) - $t0" | bc)")
done
bh=$(printf '%s\n' "${by_hand[@]}" | median); us=$(printf '%s\n' "${ours[@]}" | median)
printf 'install --host %6.2f s   by hand (nix build, nix copy, ssh nix-env --set) %6.2f s   %.3fx (target <= 1.05)\n' \
  "$us" "$bh" "$(echo "$us / $bh" | bc -l)"
b0=$(sent); t0=$(now)
"$mg" --host "$host" install --force "path:$work/flake#ct" -n bench-remote >/dev/null 2>&1
printf 'no-change reinstall --host %6.2f s, %d bytes sent' "$(echo "$(now) - $t0" | bc)" "$(($(sent) - b0))"
b0=$(sent); t0=$(now)
ssh_h2 true
printf '   (one bare ssh login: %.2f s, %d bytes)\n' "$(echo "$(now) - $t0" | bc)" "$(($(sent) - b0))"
# 20 guests there; the host named three times (three ssh aliases of one
# machine), asked at once.
for i in $(seq 20); do
  ssh_h2 "ln -sfn \$(readlink -f /nix/var/nix/profiles/miniguest-profiles/bench-remote) /nix/var/nix/profiles/miniguest-profiles/bench-s$i && mkdir -p /etc/miniguests && ln -sfn /nix/var/nix/profiles/miniguest-profiles/bench-s$i /etc/miniguests/bench-s$i"
done
for alias in h2a h2b h2c; do
  printf 'Host %s\n  HostName %s\n  User root\n  IdentityFile %s\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  HostKeyAlias %s\n  BatchMode yes\n' \
    "$alias" "$host" "$h2/id" "$h2/known_hosts" "$host" >> "$h2/ssh_config"
done
one=(); three=()
for _ in $(seq "$rounds"); do
  t0=$(now); "$mg" --host "$host" status --json >/dev/null; one+=("$(echo "$(now) - $t0" | bc)")
  t0=$(now); "$mg" --host h2a --host h2b --host h2c status --json >/dev/null; three+=("$(echo "$(now) - $t0" | bc)")
done
rows=$("$mg" --host h2a --host h2b --host h2c status --json | grep -c '"host"')
o=$(printf '%s\n' "${one[@]}" | median); t=$(printf '%s\n' "${three[@]}" | median)
printf 'status of 3 hosts x 20 guests (%d rows) %6.2f s   one host %6.2f s   %.2fx\n' "$rows" "$t" "$o" "$(echo "$t / $o" | bc -l)"
fi

if want 8; then
echo "== 8. real systemd (the systemd stand-in) against the busybox stand-in, median of $rounds"
# The same guest as the busybox stand-in's ctstay, but Debian's systemd
# 257 as PID 1 with NixOS's unit set: start to `running`, and what the
# idle container holds in memory (its cgroup's).
MINIGUEST_STANDIN_SYSTEMD=1 bash scripts/standin-flake.sh "$work/sdflake" >/dev/null
for attr in ctstay ctsdplain; do
  flake=$work/flake; [ $attr = ctsdplain ] && flake=$work/sdflake
  "$mg" install "path:$flake#$attr" -n "bench-$attr" >/dev/null 2>&1
  "$mg" create "bench-$attr" --define --lxcpath "$work/lxc-sd" >/dev/null 2>&1
  times=()
  for _ in $(seq "$rounds"); do
    t0=$(now); "$mg" start "bench-$attr" --wait=120 >/dev/null; times+=("$(echo "$(now) - $t0" | bc)")
    "$mg" stop "bench-$attr" >/dev/null
  done
  "$mg" start "bench-$attr" --wait=120 >/dev/null
  sleep 3
  # cgroup v2's memory.current, or v1's usage where memory is still v1.
  mem=$(lxc-cgroup -P "$work/lxc-sd" -n "bench-$attr" memory.current 2>/dev/null ||
    lxc-cgroup -P "$work/lxc-sd" -n "bench-$attr" memory.usage_in_bytes 2>/dev/null || echo 0)
  t0=$(now); "$mg" stop "bench-$attr" >/dev/null; stop=$(echo "$(now) - $t0" | bc)
  printf '%-9s lxc start --wait to ready %6.2f s   stop %5.2f s   idle cgroup memory %6.1f MiB\n' \
    "$([ $attr = ctstay ] && echo busybox || echo systemd)" "$(printf '%s\n' "${times[@]}" | median)" "$stop" "$(echo "$mem / 1048576" | bc -l)"
done

# nspawn: the command `create -t nspawn` prints, from its start to the
# busybox stand-in's marker or systemd's multi-user line on its console.
for attr in ct ctsdplain; do
  flake=$work/flake marker=STANDIN-DONE
  if [ $attr = ctsdplain ]; then flake=$work/sdflake marker='Reached target.*multi-user.target'; fi
  "$mg" install "path:$flake#$attr" -n "bench-nsp-$attr" >/dev/null 2>&1
  script=$("$mg" create -t nspawn "bench-nsp-$attr" 2>/dev/null)
  times=()
  for _ in $(seq "$rounds"); do
    times+=("$(MARKER=$marker time_to_marker "$work/nsp.log" sh -c "$script > $work/nsp.log 2>&1")")
    # The next round's machine has this one's name: wait for its shutdown.
    while pgrep -x systemd-nspawn >/dev/null; do sleep 0.2; done
  done
  printf '%-9s nspawn start to ready %6.2f s\n' \
    "$([ $attr = ct ] && echo busybox || echo systemd)" "$(printf '%s\n' "${times[@]}" | median)"
done

# VMs: the busybox stand-in's vmstay against vmsd (systemd from stage 1
# on, udev, qemu-ga as NixOS's unit), on 9p. libvirt: `start --wait` to
# ready (the readiness command through the agent), `stop` (through the
# agent: systemd's poweroff, or the busybox stand-in's ACPI handler), and
# the idle QEMU's resident memory. `run` and microvm.nix's QEMU shape:
# to the console's marker (the busybox stand-in's, or systemd's
# "Reached target multi-user.target").
export -f microvm_nix
export work virtiofsd_bin
mkdir -p "$work/secrets"
for c in api-token ssh-host-key; do echo "bench $c" > "$work/secrets/$c"; done
for attr in vmstay vmsd; do
  flake=$work/flake marker=STANDIN-DONE creds=()
  if [ $attr = vmsd ]; then
    flake=$work/sdflake marker='Reached target.*multi-user.target'
    # The credentials it declares, which systemd imports from fw_cfg.
    creds=(--credential "api-token=$work/secrets/api-token" --credential "ssh-host-key=$work/secrets/ssh-host-key")
  fi
  name=bench-$attr
  "$mg" install "path:$flake#$attr" -n "$name" >/dev/null 2>&1
  out=$(readlink -f "$work/guests/$name")
  "$mg" create "$name" --define --network none --console-log "$work/$attr.log" "${creds[@]}" >/dev/null 2>&1
  ready=(); base=(); run=()
  for _ in $(seq "$rounds"); do
    t0=$(now); "$mg" start "$name" --wait=300 >/dev/null; ready+=("$(echo "$(now) - $t0" | bc)")
    "$mg" stop --force "$name" >/dev/null
    base+=("$(MARKER=$marker time_to_marker "$work/base.log" bash -c 'microvm_nix "$0" "$1" "$2"' vm9p "$out" "$work/base.log")")
    run+=("$(MARKER=$marker time_to_marker "$work/run.log" "$mg" run "$name" --network none --console-log "$work/run.log" "${creds[@]}")")
  done
  "$mg" start "$name" --wait=300 >/dev/null
  sleep 3
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$(cat "/run/libvirt/qemu/$name.pid")/status")
  t0=$(now); "$mg" stop "$name" --timeout 60 >/dev/null; stop=$(echo "$(now) - $t0" | bc)
  virsh -c qemu:///system undefine "$name" >/dev/null
  b=$(printf '%s\n' "${base[@]}" | median); r=$(printf '%s\n' "${run[@]}" | median)
  printf '%-9s libvirt start --wait to ready %6.2f s   stop %5.2f s   idle QEMU RSS %6.1f MiB\n' \
    "$([ $attr = vmstay ] && echo busybox || echo systemd)" "$(printf '%s\n' "${ready[@]}" | median)" "$stop" "$(echo "$rss / 1024" | bc -l)"
  printf '          to the console marker: microvm.nix shape %6.2f s   miniguest run %6.2f s, ratio %.3f\n' \
    "$b" "$r" "$(echo "$r / $b" | bc -l)"
done
fi
