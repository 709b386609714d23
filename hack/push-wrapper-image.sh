#!/usr/bin/env bash
# Build the wrapper image -- the init container's -- and push it to a registry, with no Docker
# engine: crane assembles the same image as the Dockerfile's `wrapper` target (FROM scratch,
# /restart-wrapper 0755 owned by root, /bin/tar, /bin/rm and /bin/test links to ../restart-wrapper
# in a 0755 /bin, USER 65532:65532, ENTRYPOINT ["/restart-wrapper"], CMD ["version"]).
#
#   hack/push-wrapper-image.sh REGISTRY/REPOSITORY:TAG       (make wrapper-image IMAGE=...)
#   INSECURE=1 hack/push-wrapper-image.sh 127.0.0.1:5000/restart-wrapper:dev    plain HTTP
#
# By default TAG is an OCI index with one image for each of PLATFORMS (default "linux/amd64
# linux/arm64"), each holding build/linux-ARCH/restart-wrapper (`make wrapper` builds them all) and
# naming its platform in its config; a node pulls the one of its architecture. Each platform's
# image is also pushed on its own as TAG-linux-ARCH (pushed, then completed, before the index is:
# TAG never names anything but the finished index).
# WRAPPER_BINARY=PATH ships that one binary as a single image instead of an index, for PLATFORM
# (default linux/<this machine's arch>), which must be the one it was built for.
# Every binary's ELF machine is checked against its platform. crane comes from TEST_ASSET_CRANE, the
# PATH, or hack/build-tools.sh (built from the Go module proxy). Registry credentials are crane's:
# `crane auth login` or ~/.docker/config.json.
# Prints what it pushed by digest (REGISTRY/REPOSITORY@sha256:...): the index, or the single image.
set -euo pipefail
shopt -s inherit_errexit  # push() runs in $(...): a failing step there stops the script too

[ "$#" -eq 1 ] || { echo "usage: $0 REGISTRY/REPOSITORY:TAG" >&2; exit 2; }
image=$1
case "$image" in *@*) echo "push-wrapper-image: $image: give a tag, not a digest" >&2; exit 2 ;; esac
# No tag means :latest, as for docker push; the per-platform tags need it spelled out.
case "${image##*/}" in *:*) ;; *) image=$image:latest ;; esac
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
if [ -n "${TEST_ASSET_CRANE:-}" ]; then crane=$TEST_ASSET_CRANE
elif command -v crane >/dev/null; then crane=$(command -v crane)
else crane="$("$here/build-tools.sh" crane)/crane"; fi
case "$(uname -m)" in
  x86_64) host=amd64 ;; aarch64) host=arm64 ;; armv7l) host=arm ;; *) host=$(uname -m) ;;
esac
flags=()
[ -n "${INSECURE:-}" ] && flags+=(--insecure)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The ELF machine (e_machine) a platform's binary must have.
machine_of() {
  case "$1" in
    linux/amd64 | linux/amd64/*) echo 62 ;; linux/arm64 | linux/arm64/*) echo 183 ;; linux/arm | linux/arm/*) echo 40 ;;
    *) echo "push-wrapper-image: unknown platform $1" >&2; return 1 ;;
  esac
}

# push BINARY PLATFORM REF: the image for one platform, as REF; prints it by digest.
push() {
  local binary=$1 platform=$2 ref=$3 layer machine want
  [ -x "$binary" ] || { echo "push-wrapper-image: $binary is missing; run make wrapper" >&2; return 1; }
  want=$(machine_of "$platform")
  machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' ')
  if [ "$machine" != "$want" ]; then
    echo "push-wrapper-image: $binary is not a $platform program (ELF machine $machine)" >&2
    return 1
  fi
  # The layer, as `COPY --from=wrapper-build /image/ /` leaves it (root-owned): the binary (0755)
  # and the links `restart-wrapper install` makes, so that the image mounted as a volume at
  # /restart-process gives /restart-process/restart-wrapper and /restart-process/bin/{tar,rm,test}.
  layer=$work/${platform//\//-}
  mkdir -m 0755 "$layer" "$layer/bin"
  install -m 0755 "$binary" "$layer/restart-wrapper"
  for tool in tar rm test; do ln -s ../restart-wrapper "$layer/bin/$tool"; done
  tar --create --file "$layer.tar" --directory "$layer" --format=ustar --numeric-owner \
    --owner=0 --group=0 --mtime=@0 --sort=name bin restart-wrapper
  "$crane" append "${flags[@]}" --oci-empty-base --new_layer "$layer.tar" --new_tag "$ref" >/dev/null
  # BuildKit gives a FROM scratch image the default PATH; everything else is the Dockerfile's.
  "$crane" mutate "${flags[@]}" "$ref" --tag "$ref" --set-platform "$platform" \
    --user 65532:65532 --entrypoint /restart-wrapper --cmd version \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}

if [ -n "${WRAPPER_BINARY:-}" ]; then
  push "$WRAPPER_BINARY" "${PLATFORM:-linux/$host}" "$image"
  exit 0
fi

manifests=()
for platform in ${PLATFORMS:-linux/amd64 linux/arm64}; do
  arch=${platform#linux/}
  arch=${arch%%/*}
  manifests+=(--manifest "$(push "$build/linux-$arch/restart-wrapper" "$platform" "$image-linux-$arch")")
done
# The index, from the images' digests; crane reads each platform from its config.
"$crane" index append "${flags[@]}" --tag "$image" "${manifests[@]}" >/dev/null
digest=$("$crane" digest "${flags[@]}" "$image")
echo "${image%:*}@$digest"
