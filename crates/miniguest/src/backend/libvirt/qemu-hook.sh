#!/bin/sh
# miniguest: libvirt's QEMU hook (installed as /etc/libvirt/hooks/qemu.d/miniguest).
# libvirt runs it for every domain with DOMAIN OPERATION SUB-OPERATION and
# the domain's XML on stdin. For a Miniguest guest, whose XML carries the
# command in <metadata>, it tells Miniguest that the guest is starting (so
# that what it boots is kept as a GC root) or has stopped. Other domains
# are left alone, and a failure never stops a domain from starting.
case "$2/$3" in
  prepare/begin | reconnect/begin) event=started ;;
  started/begin) event=running ;;
  release/end) event=stopped ;;
  *) exit 0 ;;
esac
command=$(sed -n 's|.*<miniguest:hook>\(.*\)</miniguest:hook>.*|\1|p' |
  sed -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e 's/&amp;/\&/g')
[ -n "$command" ] || exit 0
# The command is a shell-quoted word list written by Miniguest itself.
eval "$command \"\$event\" \"\$1\" libvirt" >&2 || true
exit 0
