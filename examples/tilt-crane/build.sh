#!/bin/sh
# Tilt's custom_build command (see ./Tiltfile): the example app's image, with no Docker engine.
#
# It compiles ../app (static, CGO_ENABLED=0), lays out what the app's Dockerfile would -- the binary
# at /app/bin/example, ./data at /app/data, /app owned by 65532 -- as one tar layer, and has crane
# append that layer to BASE_IMAGE and push the result to the registry as $EXPECTED_REF (Tilt sets
# it: REGISTRY/tilt-crane-app:tilt-build-N). BASE_IMAGE=scratch (the default) means no base at
# all: the image is the app alone, with no shell, no tar and no Env. crane mutate then sets what
# the pod runs: ENTRYPOINT /app/bin/example, no CMD (a base's `sh` would become the program's
# argument), USER 65532, and the platform. The webhook reads that ENTRYPOINT from the registry, as
# the pod has no `command`, and the image's PATH (the runtime's default without Env) for tar and rm.
set -eu
cd "$(dirname "$0")"  # ./data and ../app are relative to this directory

: "${EXPECTED_REF:?set by Tilt: run this through custom_build}"
base=${BASE_IMAGE:-scratch}
arch=$(go env GOARCH)
insecure=
[ -n "${REGISTRY_INSECURE:-}" ] && insecure=--insecure

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/app/bin" "$work/root/app/data"
(cd ../app && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags='-s -w' -o "$work/root/app/bin/example" .)
cp -R data/. "$work/root/app/data/"
# Owned by the app's user, so that Tilt's sync (tar, as that user) can write under /app/data.
tar --create --file "$work/layer.tar" --directory "$work/root" --numeric-owner --owner=65532 --group=65532 \
  --mtime=@0 app

if [ "$base" = scratch ]; then
  from=--oci-empty-base
else
  from="--base=$base"
fi
crane append $insecure --platform "linux/$arch" "$from" --new_layer "$work/layer.tar" \
  --new_tag "$EXPECTED_REF" >/dev/null
crane mutate $insecure "$EXPECTED_REF" --tag "$EXPECTED_REF" --entrypoint /app/bin/example --cmd= \
  --user 65532:65532 --set-platform "linux/$arch" >/dev/null
