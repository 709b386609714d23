"""hack/build-kind-node-image.sh -- a kind node image assembled without any registry -- and the kind
cluster configuration that goes with it (hack/kind-cluster.yaml).

A cluster on it is the e2e test's business (it needs a Docker engine); here, without Docker, the
image tarball is checked for what kind and kubeadm rely on: kind's image config, the binaries where
kind's own node images have them, the cgroup v1 and CAP_SYS_RESOURCE adjustments, the static CNI
configuration, and the images kubeadm runs already in the node's containerd. Building it needs
root and mmdebstrap (the first build takes minutes; then it is cached).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.versions import pinned

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hack" / "build-kind-node-image.sh"
CONFIG = ROOT / "hack" / "kind-cluster.yaml"


def test_the_cluster_config_fits_the_image():
    config = yaml.safe_load(CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    # The image's conflist gives pods 10.244.0.0/24: one node, kind's default podSubnet.
    assert config["networking"]["disableDefaultCNI"] is True
    assert config["networking"]["podSubnet"] == "10.244.0.0/16"
    assert [node["role"] for node in config["nodes"]] == ["control-plane"]
    patches = [yaml.safe_load(patch) for patch in config["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches


def test_ref_is_the_kubernetes_version():
    result = subprocess.run(["bash", str(SCRIPT), "--ref"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"restart-process/kind-node:{pinned('KUBERNETES_VERSION')}"


@pytest.fixture(scope="module")
def node_image() -> Path:
    if os.geteuid() != 0:
        pytest.skip("building the kind node image needs root (mmdebstrap's root mode, chroot); `sudo make test`")
    missing = [tool for tool in ("mmdebstrap", "go") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: `make test` installs mmdebstrap (make packages); "
                    "Go builds the rest")
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    return Path(result.stdout.strip())


def member(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    for candidate in (name, f"./{name}"):
        try:
            return archive.getmember(candidate)
        except KeyError:
            pass
    raise KeyError(name)


@pytest.mark.slow
def test_node_image_is_laid_out_as_kinds(node_image):
    k8s = pinned("KUBERNETES_VERSION")
    with tarfile.open(node_image) as outer:
        [manifest] = json.load(outer.extractfile(member(outer, "manifest.json")))
        config = json.load(outer.extractfile(member(outer, manifest["Config"])))
        assert manifest["RepoTags"] == [f"restart-process/kind-node:{k8s}"]
        assert config["os"] == "linux" and config["architecture"] in ("amd64", "arm64")
        assert config["config"]["Entrypoint"] == ["/usr/local/bin/entrypoint", "/sbin/init"]
        assert config["config"]["StopSignal"] == "SIGRTMIN+3"
        assert "container=docker" in config["config"]["Env"]

        files: dict[str, tarfile.TarInfo] = {}
        wanted = {"kind/version", "etc/default/kubelet", "etc/containerd/config.toml",
                  "kind/cni/10-kind-static.conflist", "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"}
        contents: dict[str, bytes] = {}
        [layer] = manifest["Layers"]
        with tarfile.open(fileobj=outer.extractfile(member(outer, layer)), mode="r|") as rootfs:
            for info in rootfs:
                name = info.name.removeprefix("./")
                files[name] = info
                if name in wanted:
                    contents[name] = rootfs.extractfile(info).read()

    assert contents["kind/version"].decode() == k8s
    for path in ("kind/bin/install-static-cni.sh", "usr/bin/kubeadm", "usr/bin/kubelet", "usr/bin/kubectl",
                 "usr/local/bin/containerd",
                 "usr/local/bin/ctr", "usr/local/bin/containerd-shim-runc-v2", "usr/local/bin/crictl",
                 "usr/local/sbin/runc", "usr/local/bin/entrypoint", "kind/bin/mount-product-files.sh",
                 "opt/cni/bin/ptp", "opt/cni/bin/host-local",
                 "opt/cni/bin/loopback", "opt/cni/bin/portmap"):
        assert files[path].isfile() and files[path].mode & 0o111, path
    assert files["etc/containerd/cri-base.json"].isfile()
    assert files["usr/sbin/init"].linkname == "/usr/lib/systemd/systemd"
    for unit in ("kubelet", "containerd", "undo-mount-hacks"):
        assert files[f"etc/systemd/system/multi-user.target.wants/{unit}.service"].issym()
    assert files["etc/kubernetes/manifests"].isdir()
    assert not [name for name in files if name.startswith("dev/") and name != "dev/"], "/dev is the runtime's"

    assert b"--fail-cgroupv1=false" in contents["etc/default/kubelet"]
    containerd = contents["etc/containerd/config.toml"].decode()
    assert "restrict_oom_score_adj = true" in containerd
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in containerd
    # kind-static-cni.service installs it into /etc/cni/net.d once kube-proxy has synced.
    assert files["etc/cni/net.d"].isdir() and not [name for name in files if name.startswith("etc/cni/net.d/")]
    assert files["etc/systemd/system/multi-user.target.wants/kind-static-cni.service"].issym()
    conflist = json.loads(contents["kind/cni/10-kind-static.conflist"])
    assert [plugin["type"] for plugin in conflist["plugins"]] == ["ptp", "portmap"]
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.0.0/24"}]]

    # The images kubeadm runs, imported into containerd's k8s.io namespace (bolt keeps names as bytes).
    metadata = contents["var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"]
    for image in (f"kube-apiserver:{k8s}", f"kube-controller-manager:{k8s}", f"kube-scheduler:{k8s}",
                  f"kube-proxy:{k8s}", f"etcd:{pinned('ETCD_VERSION').removeprefix('v')}-0",
                  f"coredns/coredns:{pinned('COREDNS_VERSION')}", "pause:3.10"):
        assert f"registry.k8s.io/{image}".encode() in metadata, image
    blobs = [n for n in files if n.startswith("var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/")
             and files[n].isfile()]
    assert len(blobs) >= 3 * 7  # a manifest, a config and a layer for each of the seven images


def test_runc_bounded_drops_only_what_the_bounding_set_lacks(tmp_path):
    """hack/runc-bounded.sh, the runtime a Docker 20.10 daemon needs here for kind's --privileged
    nodes: capabilities outside this process's bounding set are dropped from the spec, for
    `create --bundle` and `exec --process`; everything else reaches runc untouched."""
    with open("/proc/self/status") as status:
        bounding = int(next(line for line in status if line.startswith("CapBnd:")).split()[1], 16)
    every = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_CHECKPOINT_RESTORE"]
    numbers = {"CAP_CHOWN": 0, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24,
               "CAP_CHECKPOINT_RESTORE": 40}
    kept = [name for name in every if bounding >> numbers[name] & 1]
    caps = {kind: list(every) for kind in ("bounding", "effective", "permitted")}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.2.0", "process": {"capabilities": caps}}))
    (tmp_path / "process.json").write_text(json.dumps({"args": ["sh"], "capabilities": caps}))
    fake_runc = tmp_path / "runc"
    fake_runc.write_text('#!/bin/sh\necho "$@"\n')
    fake_runc.chmod(0o755)
    env = {**os.environ, "RUNC_BOUNDED_RUNC": str(fake_runc)}
    wrapper = str(ROOT / "hack" / "runc-bounded.sh")

    created = subprocess.run([wrapper, "--root", "/r", "create", "--bundle", str(bundle), "id"], env=env,
                             capture_output=True, text=True, check=True)
    assert created.stdout.split() == ["--root", "/r", "create", "--bundle", str(bundle), "id"]
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["capabilities"] == {kind: kept for kind in caps}

    subprocess.run([wrapper, "exec", "--process", str(tmp_path / "process.json"), "id"], env=env, check=True,
                   capture_output=True)
    assert json.loads((tmp_path / "process.json").read_text())["capabilities"] == {kind: kept for kind in caps}
