#!/usr/bin/env bash
# Build the wrapper image -- the init container's -- and push it to a registry, with no Docker
# engine: crane assembles the same image as the Dockerfile's `wrapper` target from the same
# build/restart-wrapper (FROM scratch, /restart-wrapper 0755 owned by root, /bin/tar, /bin/rm and
# /bin/test links to ../restart-wrapper in a 0755 /bin, USER 65532:65532,
# ENTRYPOINT ["/restart-wrapper"], CMD ["version"]).
#
#   hack/push-wrapper-image.sh REGISTRY/REPOSITORY:TAG       (make wrapper-image IMAGE=...)
#   INSECURE=1 hack/push-wrapper-image.sh 127.0.0.1:5000/restart-wrapper:dev    plain HTTP
#
# WRAPPER_BINARY (default build/restart-wrapper, `make wrapper` builds it) is the binary to ship;
# PLATFORM (default linux/<this machine's arch>) must be the one it was built for. crane comes
# from TEST_ASSET_CRANE, the PATH, or hack/build-tools.sh (built from the Go module proxy).
# Registry credentials are crane's: `crane auth login` or ~/.docker/config.json.
# Prints the pushed image by digest (REGISTRY/REPOSITORY@sha256:...).
set -euo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 REGISTRY/REPOSITORY:TAG" >&2; exit 2; }
image=$1
here=$(cd "$(dirname "$0")" && pwd)
binary=${WRAPPER_BINARY:-$here/../build/restart-wrapper}
[ -x "$binary" ] || { echo "push-wrapper-image: $binary is missing; run make wrapper" >&2; exit 1; }
if [ -n "${TEST_ASSET_CRANE:-}" ]; then crane=$TEST_ASSET_CRANE
elif command -v crane >/dev/null; then crane=$(command -v crane)
else crane="$("$here/build-tools.sh" crane)/crane"; fi
case "$(uname -m)" in
  x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; armv7l) arch=arm ;; *) arch=$(uname -m) ;;
esac
platform=${PLATFORM:-linux/$arch}
flags=()
[ -n "${INSECURE:-}" ] && flags+=(--insecure)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The layer, as `COPY --from=wrapper-build /image/ /` leaves it (root-owned): the binary (0755)
# and the links `restart-wrapper install` makes, so that the image mounted as a volume at
# /restart-process gives /restart-process/restart-wrapper and /restart-process/bin/{tar,rm,test}.
mkdir -m 0755 "$work/layer" "$work/layer/bin"
install -m 0755 "$binary" "$work/layer/restart-wrapper"
for tool in tar rm test; do ln -s ../restart-wrapper "$work/layer/bin/$tool"; done
tar --create --file "$work/layer.tar" --directory "$work/layer" --format=ustar --numeric-owner \
  --owner=0 --group=0 --mtime=@0 --sort=name bin restart-wrapper
"$crane" append "${flags[@]}" --oci-empty-base --new_layer "$work/layer.tar" --new_tag "$image" >/dev/null
# BuildKit gives a FROM scratch image the default PATH; everything else is the Dockerfile's.
"$crane" mutate "${flags[@]}" "$image" --tag "$image" --set-platform "$platform" \
  --user 65532:65532 --entrypoint /restart-wrapper --cmd version \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
