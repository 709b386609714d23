#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, etcd and helm -- and, for the node tests,
# kubelet, kube-scheduler and kubectl; for the kind node image, kubeadm and kube-proxy -- from
# the Go module proxy into a cache outside the repository, keyed by version. Does nothing when
# they are there.
#
#   hack/build-control-plane.sh            build what is missing of the control plane, print the bin directory
#   hack/build-control-plane.sh NAME...    the same for these (any of the nine above)
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.x`: k8s.io/kubernetes replaces
# its staging modules (k8s.io/api, k8s.io/apiserver, ...) with local paths, which go install
# refuses. A throwaway module requires k8s.io/kubernetes and replaces each staging module
# with its published v0.Y.Z instead; the list comes from that release's own go.mod.
# etcd's server module needs no replaces; helm has none at all.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
. "$here/versions.env"
cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}
bin="$cache/control-plane-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
log() { echo "build-control-plane: $*" >&2; }

kubernetes_commands=(kube-apiserver kube-controller-manager kubelet kube-scheduler kubectl kubeadm kube-proxy)
if [ "$#" -gt 0 ]; then wanted=("$@"); else wanted=(kube-apiserver kube-controller-manager etcd helm); fi
for name in "${wanted[@]}"; do
  case " ${kubernetes_commands[*]} etcd helm " in
    *" $name "*) ;;
    *) log "cannot build $name"; exit 2 ;;
  esac
done
missing=()
for name in "${wanted[@]}"; do [ -x "$bin/$name" ] || missing+=("$name"); done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build ${missing[*]}"; exit 1; }
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0
started=$(date +%s)

needs() { [[ " ${missing[*]} " == *" $1 "* ]]; }

packages=()
for name in "${kubernetes_commands[@]}"; do
  needs "$name" && packages+=("k8s.io/kubernetes/cmd/$name")
done
if [ "${#packages[@]}" -gt 0 ]; then
  log "building ${packages[*]##*/} $KUBERNETES_VERSION (the first build takes a while)"
  mkdir "$work/kubernetes" && cd "$work/kubernetes"
  go mod init restart-process.dev/build/kubernetes >/dev/null 2>&1
  upstream=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$upstream" ] || { log "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  # Only the main module's go and godebug lines apply: take them from upstream.
  go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream")
  go mod edit -go="$go_line"
  sed -n 's/^godebug \(.*\)$/godebug \1/p' "$upstream" >> go.mod
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
  sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/k8s.io/.*|\1|p' "$upstream" | while read -r module; do
    go mod edit -replace="$module=$module@$staging_version"
  done
  major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # One go build for all of them: they share most packages, and the two cores stay busy.
  go build -trimpath -ldflags "$ldflags" -o "$bin/" "${packages[@]}"
fi

if needs etcd; then
  log "building etcd $ETCD_VERSION"
  mkdir "$work/etcd" && cd "$work/etcd"
  go mod init restart-process.dev/build/etcd >/dev/null 2>&1
  cat > main.go <<'GO'
// etcd's own server/main.go: the whole program is etcdmain.Main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .
fi

if needs helm; then
  log "building helm $HELM_VERSION"
  # As Helm's own Makefile does: stamp the version, and the Kubernetes version of its client-go
  # (without it, offline `helm template` assumes Kubernetes 1.20 and refuses kubeVersion constraints).
  helm_mod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  client_go=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_mod" | head -n 1)
  [ -n "$client_go" ] || { log "could not read helm's client-go version"; exit 1; }
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
  done
  GOBIN="$bin" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

log "built ${missing[*]} in $(( $(date +%s) - started ))s into $bin"
echo "$bin"
