# Sourced by the setup scripts: apt with a source list and package lists of
# its own, for Debian suites this machine's sources do not name. The
# machine's own sources, lists and apt configuration are left as they are.
#
#   private_apt SUITE [--only] APT-GET-ARGS…
#
# SUITE's lists live in /var/cache/miniguest-test/apt/SUITE. With --only,
# SUITE is the only source (for downloading packages of another release
# without mixing in this one's); without it, SUITE is added to the
# machine's sources (for installing a package whose dependencies come from
# this release).

private_apt_root=/var/cache/miniguest-test/apt

private_apt() {
  local suite=$1; shift
  local only=
  if [ "${1:-}" = --only ]; then only=1; shift; fi
  local dir=$private_apt_root/$suite${only:+-only}
  local opts=(
    -o "Dir::Etc::sourcelist=$dir/sources.list"
    -o "Dir::State::lists=$dir/lists"
    -o "Dir::Cache::archives=$dir/archives"
    # Downloads land in a root-owned directory; no _apt sandbox user.
    -o APT::Sandbox::User=root
  )
  if [ -n "$only" ]; then
    # Nothing of this machine: not its sources, nor its installed packages.
    opts+=(-o Dir::Etc::sourceparts=- -o Dir::State::status=/dev/null)
  fi
  if [ ! -d "$dir/lists" ]; then
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    {
      # Overriding the source list hides the machine's own
      # /etc/apt/sources.list (its sources.list.d stays): carried over,
      # so a machine that keeps its sources there still finds them.
      if [ -z "$only" ] && [ -f /etc/apt/sources.list ]; then cat /etc/apt/sources.list; fi
      echo "deb http://deb.debian.org/debian $suite main"
    } > "$dir/sources.list.new"
    mv "$dir/sources.list.new" "$dir/sources.list"
  fi
  if [ -z "$(find "$dir/lists" -maxdepth 1 -name '*Packages*' -print -quit)" ]; then
    apt-get "${opts[@]}" update -q >/dev/null
  fi
  apt-get "${opts[@]}" "$@"
}

# A package's library dependencies, recursively (what a binary of that
# release needs beside its own files), from SUITE alone. Alternatives take
# their first choice; virtual packages (<name>) are left to their
# providers, which are listed beside them.
private_apt_closure() {
  local suite=$1; shift
  private_apt "$suite" --only -q=2 check >/dev/null 2>&1 || true
  # One recursive listing holds the whole graph; the walk keeps to
  # libraries.
  private_apt_cache "$suite" depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
    awk -v roots="$*" '
      /^[^ ]/ { pkg = $1; alt = 0; next }
      /^ *\|?(Pre)?Depends:/ {
        if (!alt && $2 !~ /^</ && $2 ~ /^lib/ && $2 !~ /-perl$/) edges[pkg] = edges[pkg] " " $2
        alt = ($1 ~ /^\|/)
      }
      END {
        n = split(roots, queue, " ")
        for (i = 1; i <= n; i++) {
          p = queue[i]
          if (p in seen) continue
          seen[p] = 1; printf "%s ", p
          m = split(edges[p], next_, " ")
          for (j = 1; j <= m; j++) queue[++n] = next_[j]
        }
        print ""
      }'
}

private_apt_cache() {
  local suite=$1; shift
  local dir=$private_apt_root/$suite-only
  apt-cache -o "Dir::Etc::sourcelist=$dir/sources.list" -o "Dir::State::lists=$dir/lists" \
    -o Dir::Etc::sourceparts=- -o Dir::State::status=/dev/null "$@"
}
