# Sourced by the scripts: the private Nix configuration the tests and the
# demo use (written by setup-host.sh), so /etc/nix/nix.conf stays the user's.
export NIX_CONF_DIR=${MINIGUEST_NIX_CONF_DIR:-/var/lib/miniguest-test/nix-conf}
