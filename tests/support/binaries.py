"""The programs the tests run that this project builds from the Go module proxy, found the
envtest way: TEST_ASSET_<NAME> (e.g. TEST_ASSET_KUBE_APISERVER), then $KUBEBUILDER_ASSETS/<name>,
then the hack/ script that builds it into ~/.cache/restart-process-webhook once and prints the
directory it is in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .paths import ROOT

KUBERNETES = ("kube-apiserver", "kube-controller-manager", "etcd", "helm", "kubelet", "kube-scheduler", "kubectl",
              "kubeadm", "kube-proxy")
# containerd v2 and what goes with it; the CNI plugins are in the cni/ directory beside them.
RUNTIME = ("containerd", "ctr", "containerd-shim-runc-v2", "runc", "crictl")
# name -> the script (and its arguments) that builds it
BUILDERS = {
    **{name: ("build-control-plane.sh", name) for name in KUBERNETES},
    "crane": ("build-tools.sh", "crane"),
    "actionlint": ("build-tools.sh", "actionlint"),
    "kind": ("build-tools.sh", "kind"),
    **{name: ("build-runtime.sh",) for name in RUNTIME},
    "tilt": ("build-tilt.sh",),
}


def find_binary(name: str) -> Path:
    variable = "TEST_ASSET_" + name.upper().replace("-", "_")
    if os.environ.get(variable):
        return Path(os.environ[variable])
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).exists():
        return Path(assets) / name
    script, *args = BUILDERS[name]
    built = subprocess.run(["bash", str(ROOT / "hack" / script), *args], capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(f"hack/{script} {' '.join(args)} failed:\n{built.stderr}")
    return Path(built.stdout.strip()) / name
