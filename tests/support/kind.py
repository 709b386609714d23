"""A kind cluster for tests: kind itself, on the private Docker Engine of tests/support/docker.py
(or a user's own daemon, RESTART_PROCESS_DOCKER_HOST).

The node image is the one hack/build-kind-node-image.sh assembles from this project's own builds
(no registry is reached), loaded into that daemon; or, with KIND_NODE_IMAGE set, a published
kindest/node image the daemon already has or can pull (on a machine with a registry).

The cluster is named `restart-process-e2e`, given to every kind command as KIND_CLUSTER_NAME, so
the README's `kind load docker-image ...` runs as written and a user's own `kind` cluster is never
touched. On the private daemon its `kind` network is created here first, so that its bridge is of
the daemon's family (DockerDaemon.network_bridge) and goes with the daemon even after a killed
run. kind writes its kubeconfig to a file of ours (never ~/.kube/config). Clients -- the README's
commands, kubectl, helm, kind, Tilt -- get env(): the daemon's DOCKER_HOST, KUBECONFIG,
KIND_CLUSTER_NAME, and a PATH whose first kind, kubectl and helm are the ones the project builds
(and, for the private daemon, Debian's docker CLI).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from .binaries import find_binary
from .docker import DockerDaemon
from .paths import ROOT

NAME = "restart-process-e2e"
CONFIG = ROOT / "hack" / "kind-cluster.yaml"
TOOLS = ("kind", "kubectl", "helm")
TIMINGS: dict[str, float] = {}
OUTCOMES: dict[str, str] = {}  # scenario -> what the pods created during it got, printed at the end


class Kind:
    """`create()` a cluster on `daemon`; always `delete()`. `workdir` holds the kubeconfig and the
    PATH of tools."""

    def __init__(self, daemon: DockerDaemon, workdir: Path):
        self.daemon = daemon
        self.kubeconfig = workdir / "kubeconfig"
        self.bin = workdir / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            link = self.bin / tool
            if not link.exists():
                link.symlink_to(find_binary(tool))
        self.node_image: str | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = self.daemon.env(base)
        env.update({"KUBECONFIG": str(self.kubeconfig), "KIND_CLUSTER_NAME": NAME, "PATH": f"{self.bin}:{env['PATH']}"})
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 600, input: str | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
        """A command as a user types it, with env(); output captured."""
        result = subprocess.run(list(argv), env=self.env(), cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
        return result

    def shell(self, line: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        """One line of the README, run by bash exactly as written, from the checkout."""
        return self.run("bash", "-c", line, check=check, timeout=timeout)

    def kubectl(self) -> list[str]:
        return [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}"]

    # --- lifecycle -------------------------------------------------------------------------

    def load_node_image(self) -> str:
        """The node image in the daemon: KIND_NODE_IMAGE, or hack/build-kind-node-image.sh's."""
        started = time.monotonic()
        if os.environ.get("KIND_NODE_IMAGE"):
            self.node_image = os.environ["KIND_NODE_IMAGE"]
        else:
            script = ROOT / "hack" / "build-kind-node-image.sh"
            built = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=3600)
            if built.returncode != 0:
                raise RuntimeError(f"hack/build-kind-node-image.sh failed:\n{built.stderr[-6000:]}")
            self.daemon.docker("load", "-i", built.stdout.strip(), timeout=900)
            self.node_image = subprocess.run(["bash", str(script), "--ref"], capture_output=True, text=True,
                                             check=True).stdout.strip()
        TIMINGS["node image ready"] = time.monotonic() - started
        return self.node_image

    def create(self, timeout: float = 600) -> "Kind":
        image = self.node_image or self.load_node_image()
        started = time.monotonic()
        if self.daemon.private and self.daemon.docker("network", "inspect", "kind", check=False).returncode != 0:
            # kind puts its nodes in the network named `kind` when there is one; this one's bridge
            # is ours to clean.
            self.daemon.docker("network", "create", "--driver", "bridge",
                               "--opt", f"com.docker.network.bridge.name={self.daemon.network_bridge('k')}", "kind")
        # hack/kind-cluster.yaml goes with our node image (no kindnetd in it, cgroup v1 hosts); a
        # published image brings kind's defaults.
        config = [] if os.environ.get("KIND_NODE_IMAGE") else ["--config", str(CONFIG)]
        self.run("kind", "create", "cluster", "--name", NAME, "--image", image, *config,
                 "--kubeconfig", str(self.kubeconfig), "--wait", f"{int(timeout)}s", timeout=timeout + 60)
        TIMINGS["kind create cluster"] = time.monotonic() - started
        return self

    def delete(self) -> None:
        started = time.monotonic()
        self.run("kind", "delete", "cluster", "--name", NAME, "--kubeconfig", str(self.kubeconfig),
                 check=False, timeout=300)
        if self.daemon.private:
            self.daemon.docker("network", "rm", "kind", check=False)
        TIMINGS["kind delete cluster"] = time.monotonic() - started


# --- the README's install section ----------------------------------------------------------------

RELEASE_NAMESPACE = "restart-process-system"  # the README's
WEBHOOK_DEPLOYMENT = "rpw-restart-process-webhook"


def readme_install_commands() -> list[str]:
    """The shell lines of the README's "Install with Helm" block, in order."""
    section = (ROOT / "README.md").read_text().split("\n## Install with Helm\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def install_as_the_readme_says(kind: Kind) -> list[str]:
    """Every line of the README's install block, run by bash as written -- `docker build` with the
    options the daemon needs (DockerDaemon.build_options) -- then until the webhook's rollout is
    done. Returns the lines."""
    commands = readme_install_commands()
    for line in commands:
        if line.startswith("docker build "):
            line = line.replace("docker build ", f"docker build {' '.join(kind.daemon.build_options())} ", 1)
        kind.shell(line)
    kind.run("kubectl", "--namespace", RELEASE_NAMESPACE, "rollout", "status", f"deployment/{WEBHOOK_DEPLOYMENT}",
             "--timeout=300s")
    return commands

