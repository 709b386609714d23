#!/usr/bin/env bash
# Build the container runtime a Kubernetes 1.35+ node needs -- containerd v2 (containerd, ctr,
# containerd-shim-runc-v2), runc with seccomp, crictl and the CNI plugins -- from the Go module
# proxy into the same cache as the control plane, keyed by version. Does nothing when they are
# there. One build serves both the node tests (tests/node, containerd 2 beside Debian's 1.6) and
# the kind node image (hack/build-kind-node-image.sh), as kind's own base image builds them.
#
#   hack/build-runtime.sh        build what is missing, print the bin directory
#
# Why not Debian's: bookworm has containerd 1.6, which lacks image volumes (KEP-4639, containerd
# 2.1+) and the CRI RuntimeConfig call that Kubernetes 1.36 requires.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
. "$here/versions.env"
cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}
bin="$cache/runtime-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-crictl-$CRICTL_VERSION-cni-$CNI_PLUGINS_VERSION"
log() { echo "build-runtime: $*" >&2; }

cni_plugins=(bridge host-local loopback ptp portmap)
wanted=(containerd ctr containerd-shim-runc-v2 runc crictl "${cni_plugins[@]/#/cni/}")
missing=()
for name in "${wanted[@]}"; do [ -x "$bin/$name" ] || missing+=("$name"); done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build ${missing[*]}"; exit 1; }
mkdir -p "$bin/cni"
started=$(date +%s)
export GOFLAGS=-mod=mod
needs() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if needs containerd || needs ctr || needs containerd-shim-runc-v2; then
  log "building containerd $CONTAINERD_VERSION"
  # Stamped as containerd's Makefile does: the node reports this version to the API server
  # (status.nodeInfo.containerRuntimeVersion), which the webhook reads to choose a delivery.
  module=github.com/containerd/containerd/v2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath -tags "no_aufs no_zfs no_btrfs no_devmapper" \
    -ldflags "-s -w -X $module/version.Version=$CONTAINERD_VERSION -X $module/version.Package=github.com/containerd/containerd/v2" \
    "$module/cmd/containerd@$CONTAINERD_VERSION" "$module/cmd/ctr@$CONTAINERD_VERSION" \
    "$module/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
fi

if needs runc; then
  log "building runc $RUNC_VERSION with seccomp"
  # cgo and libseccomp: kubeadm's static pods ask for the RuntimeDefault seccomp profile.
  [ -e /usr/include/seccomp.h ] || { log "runc needs libseccomp-dev (make packages installs it)"; exit 1; }
  GOBIN="$bin" CGO_ENABLED=1 go install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
fi

if needs crictl; then
  log "building crictl $CRICTL_VERSION"
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
fi

plugins=()
for name in "${cni_plugins[@]}"; do
  needs "cni/$name" || continue
  case "$name" in
    host-local) plugins+=("github.com/containernetworking/plugins/plugins/ipam/$name@$CNI_PLUGINS_VERSION") ;;
    portmap) plugins+=("github.com/containernetworking/plugins/plugins/meta/$name@$CNI_PLUGINS_VERSION") ;;
    *) plugins+=("github.com/containernetworking/plugins/plugins/main/$name@$CNI_PLUGINS_VERSION") ;;
  esac
done
if [ "${#plugins[@]}" -gt 0 ]; then
  log "building CNI plugins $CNI_PLUGINS_VERSION"
  GOBIN="$bin/cni" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "${plugins[@]}"
fi

log "built ${missing[*]} in $(( $(date +%s) - started ))s into $bin"
echo "$bin"
