#!/usr/bin/env bash
# Build a kind node image for KUBERNETES_VERSION on a machine that reaches no container registry:
# everything in it comes from the Debian archive and from what this project builds from the Go
# module proxy. Saved as a `docker load` tarball in the cache outside the repository, keyed by its
# inputs (the versions below, this script and hack/build-base-images.sh, tests/node/pause.c). Does
# nothing when it is there.
#
#   hack/build-kind-node-image.sh      build it unless cached; print the tarball's path
#   hack/build-kind-node-image.sh --ref    print the image's name (restart-process/kind-node:VERSION)
#
#   docker load -i "$(hack/build-kind-node-image.sh)"
#   kind create cluster --image restart-process/kind-node:v1.35.4 --config hack/kind-cluster.yaml
#
# Needs root (mmdebstrap's root mode, chroot, file owners), mmdebstrap, Go and a C compiler (musl-gcc
# preferred) for pause; no Docker engine. The first build takes a few minutes on top of the Go builds.
#
# `kind build node-image` cannot be used: it fetches etcd, CoreDNS, pause and kindnetd from
# registries. So the image is assembled as kind assembles it (kind's images/base/Dockerfile and
# pkg/build/nodeimage), from kind's own files in the sigs.k8s.io/kind module:
#
# - rootfs: Debian bookworm by mmdebstrap (systemd 252 still runs on cgroup v1 hosts) with the
#   packages kind's base image installs (less nfs-common, open-iscsi and fuse-overlayfs: storage
#   e2e and rootless only); kind's entrypoint, units and scripts unchanged, its systemd clean-up,
#   ReadKMsg=no, cri-base.json from `ctr oci spec` as kind makes it, and its containerd config
#   with restrict_oom_score_adj = true (see below: this machine's processes lack CAP_SYS_RESOURCE);
# - binaries where kind puts them: containerd, ctr, containerd-shim-runc-v2 and crictl in
#   /usr/local/bin, runc (seccomp) in /usr/local/sbin, CNI plugins in /opt/cni/bin,
#   kubeadm/kubelet/kubectl in /usr/bin (hack/build-runtime.sh, hack/build-control-plane.sh);
#   /kind/version;
# - images, imported at build time into the node's /var/lib/containerd (namespace k8s.io) with
#   kind's `ctr images import --label=io.cri-containerd.pinned=pinned --all-platforms
#   --no-unpack --digests`, by this containerd run on the host against that directory (no CRI,
#   no NRI, its own socket): under exactly the names `kubeadm config images list` prints, plus
#   containerd's sandbox_image. Each is one layer: the static binary (kube-apiserver,
#   kube-controller-manager, kube-scheduler, etcd, CoreDNS built here, pause from
#   tests/node/pause.c), or for kube-proxy Debian's iptables, nftables and conntrack with an
#   iptables wrapper that follows the node's legacy/nft choice as the upstream image does;
# - networking: kindnetd cannot be built here. A static ptp + host-local + portmap conflist for
#   10.244.0.0/24 (the first node's share of kind's default podSubnet), which kind-static-cni.service
#   copies into /etc/cni/net.d once kube-proxy has synced (as kindnetd comes up after it), and
#   /kind/manifests/default-cni.yaml only records that, so clusters work with or without
#   `disableDefaultCNI: true`. One node per cluster;
# - cgroup v1: kubelet 1.35 refuses it unless told otherwise, so /etc/default/kubelet adds
#   --fail-cgroupv1=false (a flag kubelet keeps undeprecated); hack/kind-cluster.yaml says it
#   too, as a KubeletConfiguration patch.
#
# The image config is kind's: ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"],
# ENV container=docker, STOPSIGNAL SIGRTMIN+3. DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR choose the
# archive (default deb.debian.org).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script="$here/$(basename "$0")"
# shellcheck source=hack/versions.env
. "$here/versions.env"
cache=${RESTART_PROCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restart-process-webhook}
ref="restart-process/kind-node:$KUBERNETES_VERSION"
pause_c="$here/../tests/node/pause.c"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
log() { echo "build-kind-node-image: $*" >&2; }

case "${1:-}" in
  --ref) echo "$ref"; exit 0 ;;
  "") ;;
  *) sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac

arch=$(dpkg --print-architecture 2>/dev/null || true)
case "${arch:-$(uname -m)}" in
  amd64|x86_64) arch=amd64 ;;
  arm64|aarch64) arch=arm64 ;;
  *) log "unsupported architecture ${arch:-$(uname -m)}"; exit 1 ;;
esac

key=$( { printf '%s\n' "$KUBERNETES_VERSION" "$ETCD_VERSION" "$COREDNS_VERSION" "$CONTAINERD_VERSION" \
  "$RUNC_VERSION" "$CRICTL_VERSION" "$CNI_PLUGINS_VERSION" "$KIND_VERSION" "$arch" "$mirror" "$security"
  cat "$script" "$here/build-base-images.sh" "$pause_c"; } | sha256sum | cut -c1-16)
out="$cache/kind-node-$KUBERNETES_VERSION-$key.tar"
if [ -f "$out" ]; then
  echo "$out"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "needs root (mmdebstrap's root mode, chroot, file owners)"; exit 1; }
"$here/ensure-packages.sh" mmdebstrap:mmdebstrap musl-gcc:musl-tools
for tool in mmdebstrap unshare setpriv flock chroot python3 go gzip; do
  command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
cc=$(command -v musl-gcc || command -v cc || true)
[ -n "$cc" ] || { log "a C compiler (musl-gcc) is required for pause"; exit 1; }

mkdir -p "$cache"
exec {lock}>"$cache/kind-node.lock"
flock "$lock"
if [ -f "$out" ]; then  # built by the run we waited for
  echo "$out"
  exit 0
fi
# What killed builds left (their PID is gone): mmdebstrap and containerd ran in mount namespaces
# of their own and died with the build (--pdeathsig), so only files remain.
for dir in "$cache"/.kind-node-work-* /tmp/kind-node-containerd-*; do
  [ -d "$dir" ] || continue
  pid=${dir##*-}
  kill -0 "$pid" 2>/dev/null || rm -rf "$dir"
done

started=$(date +%s)
step_started=$started
step() {
  local now
  now=$(date +%s)
  log "$* (+$((now - step_started))s, ${SECONDS}s in all)"
  step_started=$now
}
work="$cache/.kind-node-work-$$"
sock_dir="/tmp/kind-node-containerd-$$"  # unix socket paths must be short
containerd_pid=''
cleanup() {
  if [ -n "$containerd_pid" ]; then kill "$containerd_pid" 2>/dev/null || true; wait "$containerd_pid" 2>/dev/null || true; fi
  rm -rf "$work" "$sock_dir"
}
trap cleanup EXIT
mkdir -p "$work"
rm -rf "$sock_dir"  # a stale one of a process that had this PID
mkdir -m 0700 "$sock_dir"

# --- what the project builds ----------------------------------------------------------------

log "building $ref (cache key $key); the Go builds are cached after the first run"
control=$("$here/build-control-plane.sh" kubeadm kubelet kubectl kube-apiserver kube-controller-manager \
  kube-scheduler kube-proxy etcd)
runtime=$("$here/build-runtime.sh")
kind_dir=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
kind_files="$kind_dir/images/base/files"
[ -d "$kind_files" ] || { log "sigs.k8s.io/kind@$KIND_VERSION has no images/base/files"; exit 1; }

coredns_bin="$cache/coredns-$COREDNS_VERSION"
if [ ! -x "$coredns_bin/coredns" ]; then
  log "building CoreDNS $COREDNS_VERSION"
  # As CoreDNS's Makefile builds it: static, no cgo.
  GOBIN="$coredns_bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
fi
# The sandbox's one program, as the node tests build it (tests/node/images.py).
"$cc" -std=c11 -D_GNU_SOURCE -Os -static -s -Wall -Werror -o "$work/pause" "$pause_c"
step "binaries ready"

# The names kubeadm of this version pulls; they must be what versions.env builds.
mapfile -t kubeadm_images < <("$control/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION")
[ "${#kubeadm_images[@]}" -gt 0 ] || { log "kubeadm config images list printed nothing"; exit 1; }
for name in "${kubeadm_images[@]}"; do
  case "$name" in
    */etcd:*) [ "${name##*:}" = "${ETCD_VERSION#v}-0" ] || { log "kubeadm wants $name; versions.env builds etcd $ETCD_VERSION"; exit 1; } ;;
    */coredns:*) [ "${name##*:}" = "$COREDNS_VERSION" ] || { log "kubeadm wants $name; versions.env says CoreDNS $COREDNS_VERSION"; exit 1; } ;;
    */pause:*) ;;
    *:"$KUBERNETES_VERSION") ;;
    *) log "kubeadm wants $name, which this script does not build"; exit 1 ;;
  esac
done

# --- Debian root filesystems (mmdebstrap, cached) ------------------------------------------

# debian_rootfs TAG VARIANT PACKAGES: a slim bookworm tarball as hack/build-base-images.sh builds
# the Dockerfile's bases (built unless cached; kind's own base image is Docker Hub's slim Debian
# too), its path in $rootfs_tar.
debian_rootfs() {
  local built
  built=$("$here/build-base-images.sh" --tag "$1" --variant "$2" --slim --include "$3" --cmd '["/sbin/init"]')
  rootfs_tar=${built#* }
  [ -f "$rootfs_tar" ] || { log "hack/build-base-images.sh printed no tarball for $1: $built"; exit 1; }
}

# kind's images/base/Dockerfile, less nfs-common, open-iscsi and fuse-overlayfs.
debian_rootfs restart-process/kind-node-base:bookworm minbase \
  systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps
node_base=$rootfs_tar
# kube-proxy's userland: what the upstream image (distroless-iptables) carries.
debian_rootfs restart-process/kube-proxy-base:bookworm essential iptables,nftables,conntrack
proxy_base=$rootfs_tar
step "Debian root filesystems ready"

# --- the node's root filesystem ------------------------------------------------------------

rootfs="$work/rootfs"
mkdir "$rootfs"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -xf "$node_base"

# kind's COPY lines: scripts and directories 0755, everything else 0644.
f="$kind_files"
install -m 0755 "$f"/usr/local/bin/* "$rootfs/usr/local/bin/"
install -d -m 0755 "$rootfs/kind" "$rootfs/kind/bin" "$rootfs/LICENSES" "$rootfs/etc/containerd" \
  "$rootfs/etc/systemd/system/kubelet.service.d"
install -m 0644 "$f/kind/README.txt" "$rootfs/kind/"
install -m 0755 "$f"/kind/bin/* "$rootfs/kind/bin/"
install -m 0644 "$f"/LICENSES/* "$rootfs/LICENSES/"
install -m 0644 "$f/etc/crictl.yaml" "$rootfs/etc/"
# kind's containerd config (version 2, which containerd 2.x migrates when it loads it), with one
# change: restrict_oom_score_adj, which kind's entrypoint sets only for rootless nodes. Where the
# node's processes lack CAP_SYS_RESOURCE (this machine's have none), systemd cannot give containerd
# its OOMScoreAdjust=-999, and runc then fails every container kubelet asks a negative score for
# ("nsexec: failed to update /proc/self/oom_score_adj: Permission denied"). Restricted,
# containerd never asks below its own score: no change where it runs at -999, as kubelet asks
# for -999 at the lowest.
sed 's/^\([[:space:]]*restrict_oom_score_adj = \)false$/\1true/' "$f/etc/containerd/config.toml" \
  > "$rootfs/etc/containerd/config.toml"
chmod 0644 "$rootfs/etc/containerd/config.toml"
grep -q '^[[:space:]]*restrict_oom_score_adj = true$' "$rootfs/etc/containerd/config.toml" \
  || { log "could not set restrict_oom_score_adj in kind's containerd config"; exit 1; }
install -m 0644 "$f"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
# Not containerd-fuse-overlayfs.service: its snapshotter (rootless, zfs) is not built here.
for unit in containerd.service kubelet.service kubelet.slice undo-mount-hacks.service; do
  install -m 0644 "$f/etc/systemd/system/$unit" "$rootfs/etc/systemd/system/"
done
install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
# kind's /etc/default/kubelet, and: kubelet 1.35 refuses a cgroup v1 host unless told otherwise
# (KubeletConfiguration failCgroupV1; the flag is one kubelet keeps undeprecated). Harmless on v2.
sed 's|^KUBELET_EXTRA_ARGS=.*|& --fail-cgroupv1=false|' "$f/etc/default/kubelet" > "$rootfs/etc/default/kubelet"
chmod 0644 "$rootfs/etc/default/kubelet"
grep -q -- '--fail-cgroupv1=false' "$rootfs/etc/default/kubelet" || { log "could not patch /etc/default/kubelet"; exit 1; }

# kind's RUN lines: no services but its own, no kmsg in the journal, systemd as /sbin/init.
find "$rootfs/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
  "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
  "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$rootfs/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service 2>/dev/null
chroot "$rootfs" systemctl mask systemd-binfmt.service 2>/dev/null
mkdir -p "$rootfs/etc/kubernetes/manifests"

# The runtime, where kind's base image has it.
install -m 0755 "$runtime/containerd" "$runtime/ctr" "$runtime/containerd-shim-runc-v2" "$runtime/crictl" \
  "$rootfs/usr/local/bin/"
install -m 0755 "$runtime/runc" "$rootfs/usr/local/sbin/runc"
install -d -m 0755 "$rootfs/opt/cni/bin"
install -m 0755 "$runtime/cni/host-local" "$runtime/cni/loopback" "$runtime/cni/ptp" "$runtime/cni/portmap" \
  "$rootfs/opt/cni/bin/"
chroot "$rootfs" /usr/local/sbin/runc --version >/dev/null \
  || { log "runc does not run in the node's rootfs (libseccomp?)"; exit 1; }
# kind: `ctr oci spec` with the product_uuid hook and without rlimits.
"$runtime/ctr" oci spec | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
spec["process"].pop("rlimits", None)
json.dump(spec, sys.stdout, indent=4)
' > "$rootfs/etc/containerd/cri-base.json"
chmod 0644 "$rootfs/etc/containerd/cri-base.json"

# Kubernetes, where kind's node image build puts it.
for name in kubeadm kubelet kubectl; do
  install -m 0755 "$control/$name" "$rootfs/usr/bin/$name"
done
printf '%s' "$KUBERNETES_VERSION" > "$rootfs/kind/version"

# The pod network, static: ptp veths with host-local addresses from the node's podCIDR -- with
# one node, 10.244.0.0/24, the first /24 of kind's default podSubnet 10.244.0.0/16 (kindnetd would
# read it from the Node). Masquerade for traffic leaving the pod network, as kindnetd does.
install -d -m 0755 "$rootfs/etc/cni/net.d" "$rootfs/kind/cni" "$rootfs/kind/manifests"
cat > "$rootfs/kind/cni/10-kind-static.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "kind-static",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "/run/cni-ipam-state"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# It goes into /etc/cni/net.d -- and the node turns Ready -- once kube-proxy has programmed the
# Services, as with kindnetd, which comes up after kube-proxy. Otherwise pods start first (CoreDNS),
# their first connection to 10.96.0.1 leaves the node un-NATed, its conntrack entry keeps the
# retransmissions un-NATed too, and CoreDNS waits out a 30 s dial timeout before it is Ready.
cat > "$rootfs/kind/bin/install-static-cni.sh" <<'EOF'
#!/bin/bash
# Install /kind/cni/10-kind-static.conflist once kube-proxy has synced the Services (its healthz
# lists a proxier only after its first sync; it answers 200 from the start), at once when kind's
# kubeadm config skips kube-proxy, and after 3 minutes anyway.
set -o errexit -o nounset -o pipefail
target=/etc/cni/net.d/10-kind-static.conflist
[ -e "$target" ] && exit 0
for _ in $(seq 360); do
  if [ -f /kind/kubeadm.conf ] && grep -q 'addon/kube-proxy' /kind/kubeadm.conf; then break; fi
  if curl -fsS -m 1 http://127.0.0.1:10256/healthz 2>/dev/null | jq -e '(.status // {}) | length > 0' >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
install -m 0644 /kind/cni/10-kind-static.conflist "$target"
echo "installed $target"
EOF
cat > "$rootfs/etc/systemd/system/kind-static-cni.service" <<'EOF'
[Unit]
Description=Install the static CNI configuration once kube-proxy is up
After=containerd.service

[Service]
Type=oneshot
ExecStart=/kind/bin/install-static-cni.sh

[Install]
WantedBy=multi-user.target
EOF
chmod 0755 "$rootfs/kind/bin/install-static-cni.sh"
chmod 0644 "$rootfs/kind/cni/10-kind-static.conflist" "$rootfs/etc/systemd/system/kind-static-cni.service"
chroot "$rootfs" systemctl enable kind-static-cni.service 2>/dev/null
# kind applies this when the cluster does not set disableDefaultCNI: nothing to run, only a note.
cat > "$rootfs/kind/manifests/default-cni.yaml" <<'EOF'
# No kindnetd in this image (it is built from a module the Go proxy does not serve): the node has a
# static CNI configuration, /etc/cni/net.d/10-kind-static.conflist (ptp, host-local 10.244.0.0/24,
# portmap; installed by kind-static-cni.service once kube-proxy is up), for a single-node cluster
# with kind's default podSubnet.
apiVersion: v1
kind: ConfigMap
metadata:
  name: kind-static-cni
  namespace: kube-system
data:
  conflist: /etc/cni/net.d/10-kind-static.conflist
  subnet: 10.244.0.0/24
EOF
chmod 0644 "$rootfs/kind/manifests/default-cni.yaml"
step "node rootfs assembled"

# --- the images kubeadm runs ---------------------------------------------------------------

archive="$work/images"
mkdir -p "$archive"
# Writes an image's config into a `docker save` directory and adds it to its manifest.json.
# Arguments: the directory, the architecture, a JSON object of config fields, the layer file
# (in the directory) and its diff ID, then the tags.
image_py='
import hashlib, json, os, sys, time
out, arch, fields, layer, diff_id, *tags = sys.argv[1:]
fields = json.loads(fields)
env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + fields.pop("Env", [])
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
config = {
    "architecture": arch, "os": "linux", "created": now,
    "config": {"Env": env, **fields},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    "history": [{"created": now, "created_by": "hack/build-kind-node-image.sh"}],
}
blob = json.dumps(config, separators=(",", ":")).encode()
name = hashlib.sha256(blob).hexdigest() + ".json"
with open(os.path.join(out, name), "wb") as f:
    f.write(blob)
path = os.path.join(out, "manifest.json")
manifest = json.load(open(path)) if os.path.exists(path) else []
manifest.append({"Config": name, "RepoTags": tags, "Layers": [layer]})
with open(path, "w") as f:
    json.dump(manifest, f)
'
# image DIR COMPRESS CONFIG_JSON TAG...: DIR as the one layer of an image in $archive. With
# COMPRESS "gz" the manifest names DIGEST.tar.gz and DIGEST.tar is left for compress_layers.
image() {
  local dir=$1 compress=$2 fields=$3 diff
  shift 3
  tar --numeric-owner --xattrs --xattrs-include='*' --sort=name --anchored --exclude='./dev/?*' -C "$dir" -cf "$archive/layer.tar" .
  diff=$(sha256sum "$archive/layer.tar" | cut -d' ' -f1)
  mv "$archive/layer.tar" "$archive/$diff.tar"
  python3 -c "$image_py" "$archive" "$arch" "$fields" "$diff.tar${compress:+.$compress}" "$diff" "$@"
}
compress_layers() {  # gzip the layers image left, on every core
  find "$archive" -maxdepth 1 -name '*.tar' -print0 | xargs -0 -r -n 1 -P "$(nproc)" gzip -n -6
}
# A static binary's image: the binary, /tmp, and root/nonroot users (as distroless/static has).
static_image() {
  local binary=$1 path=$2 fields=$3 dir
  shift 3
  dir="$work/image-$(basename "$path")"
  install -d -m 0755 "$dir/etc" "$dir/$(dirname "$path")"
  install -d -m 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$dir/etc/group"
  printf 'hosts: files dns\n' > "$dir/etc/nsswitch.conf"
  chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/nsswitch.conf"
  install -m 0755 "$binary" "$dir/$path"
  image "$dir" gz "$fields" "$@"
  rm -rf "$dir"
}

sandbox_image=$(sed -n 's/^[[:space:]]*sandbox_image[[:space:]]*=[[:space:]]*"\(.*\)"/\1/p' "$rootfs/etc/containerd/config.toml")
[ -n "$sandbox_image" ] || { log "no sandbox_image in kind's containerd config"; exit 1; }
tags_for() {  # the kubeadm image names of repository basename $1
  local name
  for name in "${kubeadm_images[@]}"; do
    local repo=${name%:*}
    [ "${repo##*/}" = "$1" ] && echo "$name"
  done
  return 0
}
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  mapfile -t tags < <(tags_for "$name")
  static_image "$control/$name" "usr/local/bin/$name" "{\"Entrypoint\": [\"/usr/local/bin/$name\"]}" "${tags[@]}"
done
mapfile -t tags < <(tags_for etcd)
static_image "$control/etcd" usr/local/bin/etcd '{"Cmd": ["/usr/local/bin/etcd"]}' "${tags[@]}"
mapfile -t tags < <(tags_for coredns)
static_image "$coredns_bin/coredns" coredns '{"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}}}' "${tags[@]}"
# kubeadm's pause and containerd's sandbox_image (kind replaces the one by the other): one image.
mapfile -t tags < <(tags_for pause)
[[ " ${tags[*]} " == *" $sandbox_image "* ]] || tags+=("$sandbox_image")
static_image "$work/pause" pause '{"Entrypoint": ["/pause"], "User": "65535:65535"}' "${tags[@]}"

# kube-proxy: Debian's iptables, nftables and conntrack, and the wrapper that picks iptables-legacy
# or iptables-nft as the node does (kubelet's KUBE-IPTABLES-HINT chain, else the rules there are),
# as kubernetes-sigs/iptables-wrappers does in the upstream image. In nftables mode it uses nft.
dir="$work/image-kube-proxy"
mkdir "$dir"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -xf "$proxy_base"
install -m 0755 "$control/kube-proxy" "$dir/usr/local/bin/kube-proxy"
cat > "$dir/usr/sbin/iptables-wrapper" <<'EOF'
#!/bin/sh
# The first iptables call decides legacy or nft, as the node does (kubernetes-sigs/iptables-wrappers):
# kubelet's KUBE-IPTABLES-HINT (or KUBE-KUBELET-CANARY) chain says which one it uses; without it,
# the one with more rules. Then iptables, ip6tables and their -save and -restore point at that
# mode for good (an atomic rename each), and this call runs it.
set -eu
cmd=${0##*/}
family=${cmd%%-*}
suffix=${cmd#"$family"}
case "$family" in iptables|ip6tables) ;; *) echo "iptables-wrapper: unknown command $cmd" >&2; exit 1 ;; esac
hint() { { "iptables-$1-save" -t mangle; "ip6tables-$1-save" -t mangle; } 2>/dev/null | grep -c -E '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) ' || true; }
rules() { { "iptables-$1-save"; "ip6tables-$1-save"; } 2>/dev/null | grep -c '^-' || true; }
if [ "$(hint nft)" -gt 0 ]; then mode=nft
elif [ "$(hint legacy)" -gt 0 ]; then mode=legacy
elif [ "$(rules legacy)" -gt "$(rules nft)" ]; then mode=legacy
else mode=nft
fi
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  f=${name%%-*}
  ln -sf "$f-$mode${name#"$f"}" "/usr/sbin/.$name.$$"
  mv -fT "/usr/sbin/.$name.$$" "/usr/sbin/$name"
done
echo "iptables-wrapper: using iptables-$mode" >&2
exec "/usr/sbin/$family-$mode$suffix" "$@"
EOF
chmod 0755 "$dir/usr/sbin/iptables-wrapper"
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf iptables-wrapper "$dir/usr/sbin/$name"
done
mapfile -t tags < <(tags_for kube-proxy)
image "$dir" gz '{"Entrypoint": ["/usr/local/bin/kube-proxy"]}' "${tags[@]}"
rm -rf "$dir"
compress_layers
tar -C "$archive" -cf "$work/images.tar" .
rm -rf "$archive"
step "images built"

# Import them as kind does, into the node's /var/lib/containerd: this containerd, run here with
# that directory as its root, its own state directory and socket, and nothing but the content and
# image stores (no CRI, no NRI socket in /var/run, no /opt/containerd).
cat > "$sock_dir/config.toml" <<EOF
version = 3
root = "$rootfs/var/lib/containerd"
state = "$sock_dir/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.native",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "$sock_dir/containerd.sock"
[ttrpc]
  address = "$sock_dir/containerd.sock.ttrpc"
EOF
# In a mount namespace of its own (the overlayfs snapshotter's mount check), and killed with
# this script if that is killed.
setpriv --pdeathsig KILL -- unshare --mount "$runtime/containerd" --config "$sock_dir/config.toml" \
  >"$work/containerd.log" 2>&1 &
containerd_pid=$!
ctr=("$runtime/ctr" --address "$sock_dir/containerd.sock" --namespace k8s.io)
for _ in $(seq 100); do
  "${ctr[@]}" version >/dev/null 2>&1 && break
  kill -0 "$containerd_pid" 2>/dev/null || { cat "$work/containerd.log" >&2; log "containerd exited"; exit 1; }
  sleep 0.1
done
"${ctr[@]}" images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests \
  "$work/images.tar" >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; log "ctr images import failed"; exit 1; }
mapfile -t imported < <("${ctr[@]}" images list -q 2>/dev/null)
kill "$containerd_pid"
wait "$containerd_pid" || true
containerd_pid=''
for name in "${kubeadm_images[@]}" "$sandbox_image"; do
  [[ " ${imported[*]} " == *" $name "* ]] || { log "$name missing after the import"; exit 1; }
done
rm -f "$work/images.tar"
step "images imported into the node's containerd: ${kubeadm_images[*]} $sandbox_image"

# --- the node image --------------------------------------------------------------------------

# One uncompressed layer (docker load is faster without gunzip; the component images inside are
# gzipped), with kind's image config: systemd in a container (container=docker), stopped by
# SIGRTMIN+3, started by kind's entrypoint.
mkdir -p "$archive"
image "$rootfs" "" '{"Env": ["container=docker"], "Entrypoint": ["/usr/local/bin/entrypoint", "/sbin/init"], "StopSignal": "SIGRTMIN+3"}' "$ref"
rm -rf "$rootfs"
tar -C "$archive" -cf "$work/node.tar" .
mv "$work/node.tar" "$out"
find "$cache" -maxdepth 1 -name "kind-node-$KUBERNETES_VERSION-*.tar" ! -name "${out##*/}" -delete
step "saved $ref ($(du -m "$out" | cut -f1) MB)"
log "built $ref in $(( $(date +%s) - started ))s: docker load -i $out"
echo "$out"
