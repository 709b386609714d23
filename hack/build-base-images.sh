#!/usr/bin/env bash
# Build the Debian base images the Dockerfile starts from, from the Debian archive this machine's
# apt uses, with mmdebstrap: stand-ins for Docker Hub's official debian images on machines that
# reach the Debian archive but no container registry. Built once into a cache outside the
# repository, keyed by their inputs; `--import` loads them into the Docker daemon DOCKER_HOST names.
#
#   hack/build-base-images.sh                          the Dockerfile's bases (debian:bookworm-slim): build
#                                                      what is not cached, print "TAG TARBALL" for each
#   hack/build-base-images.sh --import                 the same, then `docker import` each as TAG
#   hack/build-base-images.sh debian:trixie debian:bookworm-slim ...   these official names instead
#   hack/build-base-images.sh [--import] --tag TAG [--suite S] [--variant V] [--slim] [--include P,P] [--cmd JSON]
#                                                      any other rootfs, e.g. a kind node's:
#       --tag restart-process/node-base:bookworm --include systemd,systemd-sysv,dbus --cmd '["/sbin/init"]'
#
# What makes them faithful to the official images (built by debuerreotype): variant minbase with
# a merged /usr by usr-is-merged (mmdebstrap's merged-usr hook, as debootstrap does it); the
# same apt and dpkg settings (policy-rc.d, docker-clean, docker-gzip-indexes, docker-no-languages,
# docker-autoremove-suggests, docker-apt-speedup); the deb822 debian.sources with the archive,
# -updates and -security; an empty /dev; and for -slim the dpkg path-excludes of
# /etc/dpkg/dpkg.cfg.d/docker (documentation, man pages, locales) with those files removed. The
# image config is the official one: CMD ["bash"] and the default PATH.
#
# The archive is the one in /etc/apt/sources.list.d/ (or sources.list): the URI serving SUITE
# and the one serving SUITE-security; DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR override them.
# The cache key is the suite, variant, slimming, package list, command, mirrors, architecture and
# this script's own hash: change any and the image is built again (the older tarball of that tag
# is removed). DOCKER names the CLI for --import (default: docker on the PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script="$here/$(basename "$0")"
cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}/base-images
log() { echo "build-base-images: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# mmdebstrap runs this script as its customize hook, on the finished rootfs $1 (the rest comes
# in the environment, which mmdebstrap passes on).
customize() {
  local root=$1 mirror=$BASE_MIRROR security=$BASE_SECURITY suite=$BASE_SUITE slim=$BASE_SLIM
  # Services never start in a container image's build.
  printf '#!/bin/sh\n# Package installs in images happen in docker build: never start services.\nexit 101\n' \
    > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  printf '# Package installs in images need not survive a power loss.\nforce-unsafe-io\n' \
    > "$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
  {
    echo '# Keep no package caches in image layers: in effect "apt-get clean" after every run.'
    echo "DPkg::Post-Invoke { $clean };"
    echo "APT::Update::Post-Invoke { $clean };"
    echo 'Dir::Cache::pkgcache "";'
    echo 'Dir::Cache::srcpkgcache "";'
  } > "$root/etc/apt/apt.conf.d/docker-clean"
  printf '# Package lists stay compressed on disk.\nAcquire::GzipIndexes "true";\n' \
    > "$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf '# No translations of package descriptions.\nAcquire::Languages "none";\n' \
    > "$root/etc/apt/apt.conf.d/docker-no-languages"
  printf '# "apt-get purge --auto-remove" removes what was only suggested, too.\nApt::AutoRemove::SuggestsImportant "false";\n' \
    > "$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  chmod 0644 "$root"/etc/apt/apt.conf.d/docker-* "$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  chmod 0644 "$root/etc/apt/sources.list.d/debian.sources"
  # What apt left of its own runs: docker-clean keeps these out of every later layer.
  rm -f "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root/var/log/bootstrap.log" "$root/etc/hostname"
  : > "$root/etc/resolv.conf"

  [ -n "$slim" ] || return 0
  # The official slim images' dpkg configuration, and the files it keeps out removed now.
  local excludes=(/usr/share/doc/'*' /usr/share/groff/'*' /usr/share/info/'*' /usr/share/linda/'*'
    /usr/share/lintian/overrides/'*' /usr/share/locale/'*' /usr/share/man/'*')
  local includes=(/usr/share/doc/'*'/copyright /usr/share/doc/kde/HTML/C/'*' /usr/share/gnome/help/'*'/C/'*'
    /usr/share/locale/all_languages /usr/share/locale/currency/'*' /usr/share/locale/l10n/'*'
    /usr/share/locale/languages /usr/share/locale/locale.alias /usr/share/omf/'*'/'*'-C.emf)
  local file="$root/etc/dpkg/dpkg.cfg.d/docker" pattern keep=()
  {
    echo '# This is the "slim" variant of the Debian base image.'
    echo '# Many files which are normally unnecessary in containers are excluded,'
    echo '# and this configuration file keeps them that way.'
    echo
    for pattern in "${excludes[@]}"; do echo "path-exclude $pattern"; done
    echo
    for pattern in "${includes[@]}"; do echo "path-include $pattern"; done
  } > "$file"
  chmod 0644 "$file"
  for pattern in "${includes[@]}"; do keep+=(-o -path "$pattern"); done
  keep=('(' "${keep[@]:1}" ')')
  for pattern in "${excludes[@]}"; do
    local dir="${pattern%/\*}"
    [ -d "$root$dir" ] || continue
    # Inside the chroot, so that absolute links (alternatives) resolve there: files first (not
    # what path-include keeps), then empty directories and dangling links until none is left.
    chroot "$root" find "$dir" -depth -mindepth 1 -not "${keep[@]}" -not \( -type d -o -type l \) -delete
    while [ -n "$(chroot "$root" find "$dir" -depth -mindepth 1 \( -empty -o -xtype l \) -print -delete)" ]; do :; done
  done
}

if [ "${MMDEBSTRAP_HOOK:-}" = customize ]; then
  customize "$1"
  exit 0
fi

import=''
images=()      # one "TAG|SUITE|VARIANT|SLIM|INCLUDE|CMD" per image
tag='' suite=bookworm variant=minbase slim='' include='' cmd='["bash"]'
while [ "$#" -gt 0 ]; do
  case "$1" in
    --import) import=1 ;;
    --tag) tag=$2; shift ;;
    --suite) suite=$2; shift ;;
    --variant) variant=$2; shift ;;
    --slim) slim=1 ;;
    --include) include=$2; shift ;;
    --cmd) cmd=$2; shift ;;
    -h|--help) usage ;;
    debian:*)
      name=${1#debian:}
      if [[ "$name" == *-slim ]]; then images+=("$1|${name%-slim}|minbase|1||[\"bash\"]")
      else images+=("$1|$name|minbase|||[\"bash\"]"); fi ;;
    *) log "unknown argument: $1"; usage ;;
  esac
  shift
done
[ -n "$tag" ] && images+=("$tag|$suite|$variant|$slim|$include|$cmd")
# The bases the Dockerfile names in its ARGs.
[ "${#images[@]}" -gt 0 ] || images=("debian:bookworm-slim|bookworm|minbase|1||[\"bash\"]")

for tool in mmdebstrap unshare flock; do
  command -v "$tool" >/dev/null || { log "$tool is required (Debian: apt-get install $tool)"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { log "mmdebstrap's root mode needs root"; exit 1; }
arch=$(dpkg --print-architecture)

# "URI SUITE" for every Debian source of this machine's apt, deb822 and one-line alike.
apt_sources() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk 'function flush() { if (types ~ /(^| )deb( |$)/) { n = split(suites, s, " "); for (i = 1; i <= n; i++) { m = split(uris, u, " "); for (j = 1; j <= m; j++) print u[j], s[i] } } types = uris = suites = "" }
         /^[[:space:]]*$/ { flush(); next }
         /^[[:space:]]*#/ { next }
         /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
         /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
         /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
         END { flush() }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    sed -n 's/^[[:space:]]*deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]\{1,\}\)[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\2 \3/p' "$file"
  done
}
mirror_for() {  # the first URI of this machine's apt that serves suite $1
  apt_sources | awk -v suite="$1" '$2 == suite { sub(/\/$/, "", $1); print $1; exit }'
}

build() {
  local tag=$1 suite=$2 variant=$3 slim=$4 include=$5 cmd=$6
  local mirror security key name out lock started
  mirror=${DEBIAN_MIRROR:-$(mirror_for "$suite")}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=${DEBIAN_SECURITY_MIRROR:-$(mirror_for "$suite-security")}
  security=${security:-http://deb.debian.org/debian-security}
  key=$(printf '%s\n' "$suite" "$variant" "$slim" "$include" "$cmd" "$mirror" "$security" "$arch" \
    | cat - "$script" | sha256sum | cut -c1-16)
  name=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9._-' '_')
  out="$cache/$name-$key.tar"
  mkdir -p "$cache"
  # One build of a tag at a time (a parallel run waits, then finds it built).
  exec {lock}>"$cache/$name.lock"
  flock "$lock"
  if [ -f "$out" ]; then
    log "$tag: cached ($out)"
  else
    started=$(date +%s)
    log "$tag: building with mmdebstrap ($suite, $variant${slim:+, slim}${include:+, +$include}) from $mirror"
    local work
    work=$(mktemp -d "$cache/.work-$$-XXXXXX")
    # mmdebstrap's root mode mounts /proc, /sys and /dev into the chroot: in a mount namespace of
    # its own those mounts cannot outlive a killed build. What a killed build leaves in .work-PID-*
    # is removed below by the next run.
    if ! TMPDIR="$work" BASE_MIRROR="$mirror" BASE_SECURITY="$security" BASE_SUITE="$suite" BASE_SLIM="$slim" unshare --mount --pid --fork --kill-child --mount-proc \
      mmdebstrap --mode=root --variant="$variant" --format=tar --architectures="$arch" --skip=output/dev \
        --hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr ${include:+--include="$include"} --customize-hook="$script" \
        "$suite" "$work/rootfs.tar" \
        "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" >&2; then
      rm -rf "$work"
      log "$tag: mmdebstrap failed"
      return 1
    fi
    # An empty /dev, as in the official images (the runtime mounts its own): mmdebstrap leaves
    # out its device nodes and /dev itself (--skip=output/dev), and the directory is appended.
    # (Not `tar --delete` of the nodes: GNU tar's --delete corrupted some of these archives.)
    mkdir -m 0755 "$work/empty" "$work/empty/dev"
    tar --append --file "$work/rootfs.tar" --numeric-owner --owner=0 --group=0 --mtime=@0 --no-recursion \
      -C "$work/empty" ./dev
    printf '%s\n' "$cmd" > "$work/cmd"
    mv "$work/cmd" "${out%.tar}.cmd"
    mv "$work/rootfs.tar" "$out"
    rm -rf "$work"
    # Older builds of this tag (other inputs) are of no further use.
    find "$cache" -maxdepth 1 -name "$name-*.tar" ! -name "$(basename "$out")" -delete
    find "$cache" -maxdepth 1 -name "$name-*.cmd" ! -name "$(basename "${out%.tar}").cmd" -delete
    log "$tag: built in $(( $(date +%s) - started ))s, $(du -m "$out" | cut -f1) MB: $out"
  fi
  exec {lock}>&-
  echo "$tag $out"
}

# Work directories of builds that were killed (their PID is gone).
for dir in "$cache"/.work-*; do
  [ -d "$dir" ] || continue
  pid=${dir##*/.work-}; pid=${pid%%-*}
  kill -0 "$pid" 2>/dev/null || rm -rf "$dir"
done

built=()
for spec in "${images[@]}"; do
  IFS='|' read -r tag suite variant slim include cmd <<<"$spec"
  built+=("$(build "$tag" "$suite" "$variant" "$slim" "$include" "$cmd")")
done

for line in "${built[@]}"; do
  echo "$line"
  [ -n "$import" ] || continue
  read -r tag out <<<"$line"
  started=$(date +%s%N)
  "${DOCKER:-docker}" import --change "CMD $(<"${out%.tar}.cmd")" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$out" "$tag" >/dev/null
  log "$tag: imported in $(( ($(date +%s%N) - started) / 1000000 )) ms"
done
