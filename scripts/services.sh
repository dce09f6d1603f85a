#!/usr/bin/env bash
# Starts or stops the daemons the end-to-end tests talk to (virtlogd and
# libvirtd), for machines whose init does not run them. Usage: services.sh start|stop
set -euo pipefail
# shellcheck source=scripts/nix-env.sh
. "$(dirname "$0")/nix-env.sh"

run=/run/miniguest-test
case "${1:-}" in
  start)
    mkdir -p "$run" /var/log/libvirt /var/log/libvirt/qemu /var/lib/libvirt
    if ! [ -f "$run/virtlogd.pid" ] || ! kill -0 "$(cat "$run/virtlogd.pid")" 2>/dev/null; then
      virtlogd -d -p "$run/virtlogd.pid"
    fi
    if ! [ -f "$run/libvirtd.pid" ] || ! kill -0 "$(cat "$run/libvirtd.pid")" 2>/dev/null; then
      # Miniguest's QEMU hook, as `create --define` installs it, in place
      # before libvirtd starts: libvirtd only runs hooks it finds then.
      # Written only where absent.
      hook=/etc/libvirt/hooks/qemu.d/miniguest
      if ! [ -e "$hook" ]; then
        install -D -m 0755 "$(dirname "$0")/../crates/miniguest/src/backend/libvirt/qemu-hook.sh" "$hook"
      fi
      libvirtd -d --pid-file "$run/libvirtd.pid"
    fi
    # The first connection probes QEMU's capabilities, which takes a while.
    for _ in $(seq 600); do
      virsh -c qemu:///system version >/dev/null 2>&1 && { echo "services: libvirtd ready"; exit 0; }
      sleep 0.1
    done
    echo "services: libvirtd did not come up" >&2
    exit 1
    ;;
  stop)
    for d in libvirtd virtlogd; do
      if [ -f "$run/$d.pid" ]; then
        pid=$(cat "$run/$d.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$run/$d.pid"
      fi
    done
    echo "services: stopped"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
