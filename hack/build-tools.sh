#!/usr/bin/env bash
# Build crane (go-containerregistry), actionlint and kind from the Go module proxy into the same
# cache as the control plane, keyed by version. Does nothing when they are there.
#
#   hack/build-tools.sh            build what is missing, print the bin directory
#   hack/build-tools.sh crane      the same, for one of them
#
# None of these modules has replace directives, so `go install module/cmd/x@version` builds them as
# released. TEST_ASSET_CRANE / TEST_ASSET_ACTIONLINT / TEST_ASSET_KIND (envtest-style) name binaries to use instead;
# the callers check those, not this script.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
. "$here/versions.env"
cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}
bin="$cache/tools-crane-$CRANE_VERSION-actionlint-$ACTIONLINT_VERSION-kind-$KIND_VERSION"
log() { echo "build-tools: $*" >&2; }

declare -A module=(
  [crane]="github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
  [actionlint]="github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  [kind]="sigs.k8s.io/kind@$KIND_VERSION"
)
if [ "$#" -gt 0 ]; then wanted=("$@"); else wanted=(crane actionlint kind); fi
missing=()
for name in "${wanted[@]}"; do
  [ -n "${module[$name]:-}" ] || { log "cannot build $name"; exit 2; }
  [ -x "$bin/$name" ] || missing+=("$name")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build ${missing[*]}"; exit 1; }
mkdir -p "$bin"
started=$(date +%s)
for name in "${missing[@]}"; do
  log "building ${module[$name]}"
  # The version is stamped from the module's build info (crane version, actionlint -version).
  GOBIN="$bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "${module[$name]}"
done
log "built ${missing[*]} in $(( $(date +%s) - started ))s into $bin"
echo "$bin"
