"""A real Kubernetes node for tests: containerd + runc + kubelet on this machine, joined to the
test control plane (tests/support/controlplane.py) -- what kind gives, without Docker.

Everything the node writes is under one temporary directory, and containerd and the kubelet run
in their own mount and PID namespaces (`unshare --mount --pid --fork --kill-child`): the host
paths they insist on (/run/containerd, /var/lib/kubelet, /var/lib/cni, /var/log/containers, ...)
are bind mounts of directories under it, visible only inside. When the namespace's first process
dies, the kernel kills every process in it, runc's containers and containerd's shims included,
and its mounts (the kubelet's, the overlay root filesystems, sandbox shm, network namespace
files) go with it.

What the kernel does not clean up is named after the test run's PID: the kubelet's cgroup root
(/sys/fs/cgroup/*/restart-process-node-PID), the CNI bridge (rpnPID) and the directory. The
janitor of tests/support/janitor.py starts the namespace and, once the test run closes its stdin
-- at stop(), or because the run died, even by SIGKILL -- kills it and removes those. A run also
removes what an earlier run whose PID is gone left behind (clean_stale).

Pods get their own network namespaces on a CNI bridge that has no address on the host and no
masquerading: nothing routes between them and anything else. The API server reaches the kubelet
(logs, exec, cp) as "localhost" on a loopback port.

Two runtimes (RUNTIMES): containerd 2 with runc 1.4, built from the Go module proxy by
hack/build-runtime.sh -- what kind's node images and Kubernetes 1.36 need, and the only one of the
two with image volumes (KEP-4639) -- and Debian's containerd 1.6 with runc 1.1, which Kubernetes
1.35 still accepts. The node suite runs on containerd 2; tests marked `both_runtimes` run on 1.6 too.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from tests.support import janitor
from tests.support.binaries import find_binary
from tests.support.controlplane import ControlPlane
from tests.support.ports import free_port
from tests.support.waiting import wait_until

NODE_NAME = "localhost"
PREFIX = "restart-process-node-"
BRIDGE_PREFIX = "rpn"
CGROUP_FS = Path("/sys/fs/cgroup")
POD_SUBNET = "10.88.0.0/24"

# PID 1 of the node's namespaces: private copies of the host paths, then containerd, then the
# kubelet. If either exits, so does this script, and the kernel ends the rest.
INIT = r"""
set -euo pipefail
d=$1
mount --make-rshared /
for path in /run /var/lib /var/log; do
  mkdir -p "$d/host$path"
  mount --bind "$d/host$path" "$path"
done
containerd --config "$d/containerd.toml" >>"$d/containerd.log" 2>&1 &
for _ in $(seq 600); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
"$KUBELET" --config="$d/kubelet.yaml" --kubeconfig="$KUBECONFIG" --hostname-override=localhost \
  --v="${KUBELET_VERBOSITY:-2}" >>"$d/kubelet.log" 2>&1 &
wait -n
echo "node: containerd or the kubelet exited; stopping the node" >&2
exit 1
"""


class NodeControlPlane(ControlPlane):
    """The test control plane, plus what a node needs: kube-scheduler; kube-controller-manager's
    namespace, garbage-collector and node-lifecycle controllers; and an API server that reaches
    the kubelet as "localhost" (its Hostname address, on loopback) with a client certificate,
    verifying the kubelet's serving certificate against the test CA."""

    def __init__(self):
        super().__init__()
        d = self.dir
        self.extra_args = {
            "kube-apiserver": [
                "--kubelet-preferred-address-types=Hostname",
                f"--kubelet-client-certificate={d / 'admin.crt'}", f"--kubelet-client-key={d / 'admin.key'}",
                f"--kubelet-certificate-authority={d / 'ca.crt'}",
            ],
            # Appended to the harness's deployment,replicaset,job.
            "kube-controller-manager": ["--controllers=namespace,garbagecollector,nodelifecycle"],
        }

    def start(self) -> "NodeControlPlane":
        super().start()
        try:
            process = self._spawn("kube-scheduler", [
                str(find_binary("kube-scheduler")), f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}", f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            ])
            time.sleep(0.5)
            if process.poll() is not None:
                raise RuntimeError(f"kube-scheduler exited:\n{self.log_of('kube-scheduler')[-3000:]}")
        except BaseException:
            self.stop()
            raise
        return self


def clean_stale() -> list[str]:
    """Remove what killed test runs left: cgroup roots, bridges and directories named after a PID
    that no longer runs. Returns what it removed."""
    return janitor.clean_stale(PREFIX, PREFIX, BRIDGE_PREFIX)


CONTAINERD_2 = "containerd-2"
CONTAINERD_1_6 = "containerd-1.6"
RUNTIMES = (CONTAINERD_2, CONTAINERD_1_6)


class Node:
    """`start()` joins a node named "localhost" to `control_plane` and waits until it is Ready;
    always `stop()`. `registry` is host:port of the plain-HTTP registry containerd pulls from,
    `sandbox_image` the pause image there, `runtime` one of RUNTIMES."""

    def __init__(self, control_plane: ControlPlane, registry: str, sandbox_image: str, runtime: str = CONTAINERD_2):
        assert runtime in RUNTIMES, runtime
        self.control_plane = control_plane
        self.registry = registry
        self.sandbox_image = sandbox_image
        self.runtime = runtime
        pid = os.getpid()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-"))
        self.cgroup_root = f"/{PREFIX}{pid}"
        self.bridge = f"{BRIDGE_PREFIX}{pid}"
        self.owned = janitor.Owned(self.dir, self.cgroup_root.lstrip("/"), self.bridge)
        self.port = free_port()
        self.janitor: janitor.Janitor | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> "Node":
        try:
            self._write_config()
            self._make_cgroup_root()
            path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            if self.runtime == CONTAINERD_2:  # its containerd and, on containerd's PATH, its own shim
                path = f"{find_binary('containerd').parent}:{path}"
            env = {**os.environ, "PATH": path,
                   "KUBELET": str(find_binary("kubelet")), "KUBECONFIG": str(self.control_plane.kubeconfig)}
            # The janitor runs the node and cleans up after it, even when the test run is killed:
            # it kills the namespace and removes the cgroups, the bridge and the directory.
            self.janitor = janitor.Janitor(
                self.owned, ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                             "bash", "-c", INIT, "node-init", str(self.dir)],
                self.dir / "node.log", env=env)
            self.janitor.start()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.janitor is not None:
            self.janitor.stop()
            self.janitor = None
        janitor.clean(self.owned)  # what a janitor that failed to start left

    def log_of(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {name}.log\n{self.log_of(name)[-tail:]}" for name in ("node", "containerd", "kubelet"))

    # --- configuration ---------------------------------------------------------------------

    def _write_config(self) -> None:
        d, plane = self.dir, self.control_plane
        key, cert = plane.ca.serving([NODE_NAME, "127.0.0.1"])
        (d / "kubelet.key").write_bytes(key)
        (d / "kubelet.crt").write_bytes(cert)

        (d / "containerd.toml").write_text(
            self._containerd_2_config() if self.runtime == CONTAINERD_2 else self._containerd_1_6_config())
        hosts = d / "certs.d" / self.registry
        hosts.mkdir(parents=True)
        (hosts / "hosts.toml").write_text(f'server = "http://{self.registry}"\n'
                                          f'[host."http://{self.registry}"]\n  capabilities = ["pull", "resolve"]\n')

        # A bridge with no host address, no gateway, no masquerading: pods isolated on loopback's side.
        (d / "cni").mkdir()
        (d / "cni" / "10-restart-process.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "restart-process-test",
            "plugins": [{"type": "bridge", "bridge": self.bridge, "isGateway": False, "ipMasq": False,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                                  "dataDir": str(d / "cni-ipam")}}],
        }))

        (d / "kubelet.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": self.port, "readOnlyPort": 0, "healthzPort": 0,
            "tlsCertFile": str(d / "kubelet.crt"), "tlsPrivateKeyFile": str(d / "kubelet.key"),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(plane.dir / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{d}/containerd.sock",
            # This VM: cgroup v1 only, no swap accounting to speak of, no systemd.
            "failCgroupV1": False, "failSwapOn": False, "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "makeIPTablesUtilChains": False,
            "volumePluginDir": str(d / "volume-plugins"),
            "resolvConf": "",
            # The tests' disk and memory are the machine's; only the images we push are ours.
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                             "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "4s",
        }))

    # Both configurations: containerd's own root, state and socket under the node's directory; the
    # CRI plugin pulls the pause image from the test registry (certs.d: plain HTTP); the stream
    # server on loopback; restrict_oom_score_adj because the sandbox's -998 needs CAP_SYS_RESOURCE
    # (without it runc fails: "can't get final child's PID from pipe: EOF"); cgroupfs, no systemd.

    def _containerd_2_config(self) -> str:
        """containerd 2's configuration (version 3): the CRI plugin is split into images, runtime
        and the gRPC service, and the CNI plugins come from bin_dirs."""
        d = self.dir
        runc = find_binary("runc")
        cni = find_binary("containerd").parent / "cni"
        return f"""\
version = 3
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.nri.v1.nri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{self.sandbox_image}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{d}/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni}"]
    conf_dir = "{d}/cni"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    def _containerd_1_6_config(self) -> str:
        """Debian's containerd 1.6 (version 2): one CRI plugin, Debian's runc and CNI plugins."""
        d = self.dir
        return f"""\
version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
"""

    def _make_cgroup_root(self) -> None:
        """The kubelet wants its --cgroup-root to exist; cpuset's needs its parent's CPUs and nodes."""
        for hierarchy in janitor.hierarchies():
            path = hierarchy / self.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # v1 only: v2's root has no such files
                if (path / name).exists() and (hierarchy / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((hierarchy / name).read_text())

    def _wait_ready(self, timeout: float) -> None:
        from kubernetes import client, config

        core = client.CoreV1Api(config.new_client_from_config(config_file=str(self.control_plane.kubeconfig)))

        def ready() -> bool:
            try:
                conditions = core.read_node(NODE_NAME).status.conditions or []
            except client.ApiException as error:
                if error.status == 404:  # not registered yet
                    return False
                raise
            return any(c.type == "Ready" and c.status == "True" for c in conditions)

        try:
            wait_until(ready, timeout, interval=0.5, what="the node to be Ready", process=self.janitor.process)
        except AssertionError as error:
            raise RuntimeError(f"{error}:\n{self.logs()}") from None
