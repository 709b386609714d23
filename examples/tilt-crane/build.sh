#!/bin/sh
# Tilt's custom_build command (see ./Tiltfile): the example app's image, with no Docker engine.
#
# It compiles ../app (static, CGO_ENABLED=0), lays out what the app's Dockerfile would -- the binary
# at /app/bin/example, ./data at /app/data, /app owned by 65532 -- as one tar layer, and has crane
# append that layer to BASE_IMAGE and push the result to the registry as $EXPECTED_REF (Tilt sets
# it: REGISTRY/tilt-crane-app:tilt-build-N). crane mutate then sets what the pod runs:
# ENTRYPOINT /app/bin/example, no CMD (the base's `sh` would become the program's argument), and
# USER 65532. The webhook reads that ENTRYPOINT from the registry, as the pod has no `command`.
set -eu
cd "$(dirname "$0")"  # ./data and ../app are relative to this directory

: "${EXPECTED_REF:?set by Tilt: run this through custom_build}"
base=${BASE_IMAGE:-busybox:1.36}
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

crane append $insecure --platform "linux/$arch" --base "$base" --new_layer "$work/layer.tar" \
  --new_tag "$EXPECTED_REF" >/dev/null
crane mutate $insecure "$EXPECTED_REF" --tag "$EXPECTED_REF" --entrypoint /app/bin/example --cmd= \
  --user 65532:65532 >/dev/null
