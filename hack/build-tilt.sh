#!/usr/bin/env bash
# Build tilt from the Go module proxy into a cache outside the repository, keyed by version.
# Does nothing when it is there.
#
#   hack/build-tilt.sh                          build tilt if it is missing, print the bin directory
#   TEST_ASSET_TILT=/path/to/tilt hack/build-tilt.sh   use that binary: print its directory
#
# Why not `go install github.com/tilt-dev/tilt/cmd/tilt@v0.x`: tilt's go.mod has replace
# directives (its own forks of k8s.io/apimachinery and pkg/browser, a pinned go-restful), which
# go install refuses. So the build runs inside a copy of the module, as its main module: its own
# go.mod applies the replaces and its own go.sum pins every dependency, so nothing is resolved
# anew and nothing is asked of the checksum database (which has no entry for one dependency,
# github.com/tilt-dev/go-get v0.2.3: a throwaway module requiring tilt would need GONOSUMDB).
# Why a copy and not the module cache's read-only directory: the module zip has no web UI
# (pkg/assets/build is made by yarn in tilt's release, not committed), and `tilt up` in prod web
# mode refuses to start without an embedded index.html. A placeholder page goes there instead.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
. "$here/versions.env"
log() { echo "build-tilt: $*" >&2; }

# envtest-style override: a tilt binary from elsewhere.
if [ -n "${TEST_ASSET_TILT:-}" ]; then
  [ -x "$TEST_ASSET_TILT" ] || { log "TEST_ASSET_TILT=$TEST_ASSET_TILT is not an executable file"; exit 1; }
  cd "$(dirname "$TEST_ASSET_TILT")" && pwd
  exit 0
fi

cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}
bin="$cache/tilt-$TILT_VERSION"
if [ -x "$bin/tilt" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build tilt"; exit 1; }
# tilt's `lsp` command links tree-sitter, a C library: tilt's release builds with cgo too.
command -v "$(go env CC)" >/dev/null || { log "a C compiler is required to build tilt (Debian: apt-get install gcc)"; exit 1; }
mkdir -p "$bin"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# readonly: the build must use tilt's go.mod and go.sum as they are. vendor/ in the module
# zip holds only modules.txt, which would otherwise switch the build to vendor mode.
export GOFLAGS=-mod=readonly CGO_ENABLED=1
started=$(date +%s)

log "building tilt $TILT_VERSION (the first build takes a while)"
download=$(go mod download -json "github.com/tilt-dev/tilt@$TILT_VERSION") || true
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$download"; }
module_dir=$(field Dir)
info=$(field Info)
if [ ! -d "$module_dir" ] || [ ! -f "$info" ]; then
  log "could not download github.com/tilt-dev/tilt@$TILT_VERSION: $(field Error)"
  exit 1
fi
# The release's timestamp, so the binary does not depend on when it was built.
date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")

cp -R "$module_dir" "$work/tilt"
chmod -R u+w "$work/tilt"
cd "$work/tilt"
cat > pkg/assets/build/index.html <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tilt $TILT_VERSION</title></head>
<body>
<p>This Tilt $TILT_VERSION was built from the Go module by restart-process-webhook's
hack/build-tilt.sh, which has no web UI bundle. Follow resources in the terminal with
<code>tilt up --stream</code>, <code>tilt logs</code> or <code>tilt get uiresources</code>.</p>
</body>
</html>
HTML

# As tilt's .goreleaser.yml does: the osusergo tag, and version (without the v) and date
# stamped into package main. Without them tilt calls itself a -dev build and defaults
# to the local web mode, which wants yarn and tilt's web sources.
ldflags="-s -w -X main.version=${TILT_VERSION#v} -X main.date=$date"
go build -trimpath -tags=osusergo -ldflags "$ldflags" -o "$bin/tilt" ./cmd/tilt

log "built tilt $TILT_VERSION in $(( $(date +%s) - started ))s into $bin"
echo "$bin"
