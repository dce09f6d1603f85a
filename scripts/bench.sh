#!/usr/bin/env bash
# Benchmarks (figures printed, not asserted), each against a baseline
# measured in the same run:
#   1. CLI overhead against bare nix build + nix-env --set; list with 1,000 guests
#   2. boot to the guest's marker: libvirt (create --define + start) vs bare QEMU
#      with the same kernel and initrd, for 9p and virtiofs; LXC and nspawn start
#   3. disk added per guest for 50 guests sharing one closure vs a raw image
#   4. status of 50 defined guests (libvirt, LXC) vs the hypervisor's own listing
# Run as root on Debian 12.
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${BENCH_ROUNDS:-3}

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

echo "== 1. CLI overhead"
cargo bench --quiet --bench overhead 2>/dev/null | grep -v '^$'

cargo build --release --quiet
mg="$root/target/release/miniguest"
export MINIGUEST_GUESTS_DIR="$work/guests" MINIGUEST_PROFILES_DIR="$work/profiles" MINIGUEST_STATE_DIR="$work/state"
bash scripts/standin-flake.sh "$work/flake"
now() { date +%s.%N; }
wait_marker() { # log, deadline in seconds
  for _ in $(seq $(( $2 * 50 ))); do grep -q STANDIN-DONE "$1" 2>/dev/null && return 0; sleep 0.02; done
  echo "no marker in $1" >&2; return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== 2. boot to marker (median of $rounds, TCG: $(grep -qE 'vmx|svm' /proc/cpuinfo && echo no || echo yes))"
for attr in vm9p vmfs; do
  name="bench-$attr"
  "$mg" install -n "$name" "path:$work/flake#$attr" >/dev/null
  out=$(readlink -f "$work/guests/$name")
  cmdline=$(jq -r '.kernelParams | join(" ")' "$out/miniguest.json")
  lv=(); bare=()
  for i in $(seq "$rounds"); do
    log="$work/$name-lv-$i.log"
    t0=$(now)
    "$mg" create "$name" --define --console-log "$log" 2>/dev/null
    virsh -c qemu:///system start "$name" >/dev/null
    wait_marker "$log" 120
    lv+=("$(echo "$(now) - $t0" | bc)")
    while ! virsh -c qemu:///system domstate "$name" | grep -q 'shut off'; do sleep 0.1; done
    virsh -c qemu:///system undefine "$name" >/dev/null

    log="$work/$name-bare-$i.log"
    shares=()
    t0=$(now)
    if [ "$attr" = vmfs ]; then
      for tag in nix-store boot; do
        src=/nix/store; [ $tag = boot ] && src="$out/boot"
        /usr/lib/qemu/virtiofsd --socket-path="$work/$tag.sock" -o source="$src" 2>/dev/null &
      done
      while [ ! -S "$work/nix-store.sock" ] || [ ! -S "$work/boot.sock" ]; do sleep 0.01; done
      shares=(-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem
        -chardev socket,id=a,path="$work/nix-store.sock" -device vhost-user-fs-pci,chardev=a,tag=nix-store
        -chardev socket,id=b,path="$work/boot.sock" -device vhost-user-fs-pci,chardev=b,tag=boot)
    else
      shares=(-virtfs local,path=/nix/store,mount_tag=nix-store,security_model=none,readonly=on
        -virtfs "local,path=$out/boot,mount_tag=boot,security_model=none,readonly=on")
    fi
    qemu-system-x86_64 -accel tcg -m 256 -kernel "$out/kernel" -initrd "$out/initrd" \
      -append "$cmdline" -display none -no-reboot -nic none -serial "file:$log" "${shares[@]}" &
    qemu=$!
    wait_marker "$log" 120
    bare+=("$(echo "$(now) - $t0" | bc)")
    wait "$qemu" || true
    rm -f "$work"/*.sock
  done
  l=$(printf '%s\n' "${lv[@]}" | median); b=$(printf '%s\n' "${bare[@]}" | median)
  printf '%-8s libvirt %6.2f s   bare qemu %6.2f s   ratio %.2f\n' "$attr" "$l" "$b" "$(echo "$l / $b" | bc -l)"
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
