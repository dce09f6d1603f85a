# Sourced by the scripts: the private Nix configuration the tests and the
# demo use (written by setup-host.sh), so /etc/nix/nix.conf stays the user's,
# and the tools setup-host.sh provides beside the system's (virtiofsd where
# QEMU ships none), after the system's own.
export NIX_CONF_DIR=${MINIGUEST_NIX_CONF_DIR:-/var/lib/miniguest-test/nix-conf}
case ":$PATH:" in
  *:/var/cache/miniguest-test/bin:*) ;;
  *) export PATH="$PATH:/var/cache/miniguest-test/bin" ;;
esac
