"""The live-update scenario, driven by kubectl: one scenario, two ways to get a node.

tests/node runs it on a kubelet on this machine (no Docker); tests/e2e runs it on kind, with the
webhook installed by the chart. It deploys examples/app/k8s.yaml -- the example app, opted in, restricted-compliant -- and syncs
files in the three ways a sync can re-run the program, checking each time that the program was
re-executed inside the same container:

- restart-on-sync (examples/tilt, the webhook's default): `kubectl cp` alone (tar through the exec
  API, as Tilt's sync does); the wrapper's tar, first on the container's PATH, reports the finished
  sync and the wrapper restarts the program;
- the trigger (a Tilt `run` step, for live updates that build in the container): with
  restart-on-sync "false", `kubectl cp` a file in, then `kubectl exec ...
  /restart-process/restart-wrapper trigger` (no shell in the command);
- watch mode (examples/tilt-watch, Skaffold): with restart-on-sync "false", `kubectl cp` alone, into
  the watched directory.

Needs only kubectl, a cluster with the webhook installed, and the example image; PyYAML is the
only dependency beyond the standard library (and tests.support.waiting).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "app" / "k8s.yaml"
WRAPPER = "/restart-process/restart-wrapper"
STARTED = re.compile(r'started pid=(\d+) greeting="(.*)"')
NO_GREETING = "hello (no greeting file yet)"  # what examples/app/main.go says without the file


class ScenarioFailure(AssertionError):
    pass


@dataclass
class Start:
    pid: int
    greeting: str


@dataclass
class Cluster:
    """kubectl's argv up to the subcommand (binary, kubeconfig or context), and the namespace."""

    kubectl: list[str]
    namespace: str
    timeout: float = 180

    def run(self, *args: str, input: bytes | None = None, check: bool = True, namespaced: bool = True) -> str:
        argv = [*self.kubectl, *(["--namespace", self.namespace] if namespaced else []), *args]
        result = subprocess.run(argv, input=input, capture_output=True, timeout=self.timeout)
        if check and result.returncode != 0:
            raise ScenarioFailure(f"{' '.join(argv)} failed ({result.returncode}):\n"
                                  f"{result.stderr.decode(errors='replace')}")
        return result.stdout.decode(errors="replace")

    def apply(self, manifest: dict | str) -> str:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.run("apply", "-f", "-", input=text.encode())

    def get(self, kind: str, name: str) -> dict:
        return json.loads(self.run("get", kind, name, "-o", "json"))

    def logs(self, pod: str, container: str = "app", previous: bool = False) -> str:
        return self.run("logs", pod, "-c", container, *(["--previous"] if previous else []))

    def starts(self, pod: str, container: str = "app") -> list[Start]:
        return [Start(int(m.group(1)), m.group(2)) for m in STARTED.finditer(self.logs(pod, container))]

    def exec(self, pod: str, *command: str, container: str = "app", check: bool = True) -> str:
        return self.run("exec", pod, "-c", container, "--", *command, check=check)

    def copy(self, local: Path, pod: str, remote: str, container: str = "app") -> None:
        """kubectl cp: tar through the exec API, as Tilt's and Skaffold's sync do."""
        self.run("cp", str(local), f"{self.namespace}/{pod}:{remote}", "-c", container, namespaced=False)

    def pid1(self, pod: str, container: str = "app") -> list[str]:
        return self.exec(pod, "cat", "/proc/1/cmdline", container=container).rstrip("\0").split("\0")

    def container_status(self, pod: str, container: str = "app") -> dict:
        statuses = self.get("pod", pod).get("status", {}).get("containerStatuses") or []
        return next((s for s in statuses if s["name"] == container), {})

    def wait(self, condition, what: str, timeout: float | None = None, interval: float = 0.5):
        """Poll `condition` until it returns something truthy (returned); fail after `timeout`."""
        try:
            return wait_until(condition, timeout or self.timeout, interval, what,
                              ignoring=(ScenarioFailure, subprocess.TimeoutExpired))
        except AssertionError as error:
            raise ScenarioFailure(str(error)) from None

    def wait_starts(self, pod: str, count: int, container: str = "app") -> list[Start]:
        try:
            return self.wait(lambda: s if len(s := self.starts(pod, container)) >= count else None,
                             f"{count} starts of the program in {pod}")
        except ScenarioFailure as failure:
            raise ScenarioFailure(f"{failure}\n--- logs of {pod}:\n{self.logs(pod, container)}") from None


RESTART_ON_SYNC = "restart-process.dev/restart-on-sync"


def example_deployment(name: str, image: str, watch: bool, restart_on_sync: bool = True) -> dict:
    """examples/app/k8s.yaml under another name and image; without its watch annotation or with it
    (watch mode); with restart-on-sync, the webhook's default, or with it "false" (the trigger, or
    the watch, is then the only restart)."""
    deployment = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == "Deployment")
    deployment["metadata"]["name"] = name
    deployment["metadata"]["labels"] = {"app": name}
    deployment["spec"]["selector"]["matchLabels"] = {"app": name}
    template = deployment["spec"]["template"]
    template["metadata"]["labels"] = {"app": name}
    if not watch:
        template["metadata"]["annotations"].pop("restart-process.dev/watch")
        template["metadata"]["annotations"].pop("restart-process.dev/debounce", None)
    if not restart_on_sync:
        template["metadata"]["annotations"][RESTART_ON_SYNC] = "false"
    for container in template["spec"]["containers"]:
        container["image"] = image
    return deployment


def deploy(cluster: Cluster, deployment: dict) -> str:
    """Apply, wait for the rollout, return the pod's name once its program has started."""
    name = deployment["metadata"]["name"]
    cluster.apply(deployment)
    cluster.run("rollout", "status", f"deployment/{name}", f"--timeout={int(cluster.timeout)}s")
    pods = json.loads(cluster.run("get", "pod", "-l", f"app={name}", "-o", "json"))["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(running) != 1:
        raise ScenarioFailure(f"expected one pod of {name}, got {[p['metadata']['name'] for p in running]}")
    pod = running[0]
    init = [c["name"] for c in pod["spec"].get("initContainers") or []]
    # The wrapper arrives by init container, or (delivery image-volume, or auto on a cluster that
    # takes one) as the wrapper image mounted where the init container would have put it.
    by_image = any(v.get("name") == "restart-process" and "image" in v for v in pod["spec"].get("volumes") or [])
    if not (by_image or init[:1] == ["restart-process-install"]) or pod["spec"]["containers"][0]["command"][0] != WRAPPER:
        raise ScenarioFailure(f"the webhook did not mutate {pod['metadata']['name']}: init containers {init}, "
                              f"command {pod['spec']['containers'][0].get('command')}")
    cluster.wait_starts(pod["metadata"]["name"], 1)
    return pod["metadata"]["name"]


def _restarted_in_place(cluster: Cluster, pod: str, before: Start, synced: str, remote: str) -> dict:
    """The checks after a restart: a new process that read the synced file, under the same wrapper
    as PID 1, in the same container, the file still there. Returns the evidence."""
    starts = cluster.wait(lambda: s if len(s := cluster.starts(pod)) >= 2 and s[-1].greeting == synced else None,
                          f"a start of the program that read the synced {remote}")
    after = starts[-1]
    if after.pid == before.pid:
        raise ScenarioFailure(f"the program was not re-executed (pid {after.pid} both times)")
    pid1 = cluster.pid1(pod)
    if pid1[0] != WRAPPER:
        raise ScenarioFailure(f"PID 1 is no longer the wrapper: {pid1}")
    status = cluster.container_status(pod)
    if status.get("restartCount") != 0 or "running" not in status.get("state", {}):
        raise ScenarioFailure(f"the container itself restarted or stopped: {status}")
    content = cluster.exec(pod, "cat", remote).strip()
    if content != synced:
        raise ScenarioFailure(f"the synced file is gone or changed: {content!r}")
    return {"pod": pod, "pids": [before.pid, after.pid], "greetings": [before.greeting, after.greeting],
            "pid1": pid1, "restartCount": status["restartCount"]}


def _sync_greeting(cluster: Cluster, pod: str, what: str) -> str:
    """kubectl cp a new greeting file into the pod (a tar through the exec API); returns its text."""
    synced = f"{what} {uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as local:
        (Path(local) / "greeting.txt").write_text(synced + "\n")
        cluster.copy(Path(local) / "greeting.txt", pod, "/app/data/greeting.txt")
    return synced


def sync_way(cluster: Cluster, image: str, name: str = "example-sync") -> dict:
    """Sync with kubectl cp, nothing else: restart-on-sync, the webhook's default."""
    pod = deploy(cluster, example_deployment(name, image, watch=False))
    before = cluster.starts(pod)[0]
    synced = _sync_greeting(cluster, pod, "synced alone")
    evidence = _restarted_in_place(cluster, pod, before, synced, "/app/data/greeting.txt")
    if "restarting /app/bin/example: a sync finished (tar -x)" not in cluster.logs(pod):
        raise ScenarioFailure(f"the wrapper did not log a restart for the finished sync:\n{cluster.logs(pod)}")
    return evidence


def tilt_way(cluster: Cluster, image: str, name: str = "example-trigger") -> dict:
    """Sync with kubectl cp, restart with `restart-wrapper trigger` through kubectl exec, with
    restart-on-sync "false" (as for a live update whose run steps build in the container)."""
    pod = deploy(cluster, example_deployment(name, image, watch=False, restart_on_sync=False))
    before = cluster.starts(pod)[0]
    synced = _sync_greeting(cluster, pod, "synced for the trigger")
    if len(cluster.starts(pod)) != 1:
        raise ScenarioFailure("the program restarted before the trigger, with no watch and restart-on-sync off")
    cluster.exec(pod, WRAPPER, "trigger")
    evidence = _restarted_in_place(cluster, pod, before, synced, "/app/data/greeting.txt")
    if not re.search(r"restarting /app/bin/example: .* changed", cluster.logs(pod)):
        raise ScenarioFailure(f"the wrapper did not log the triggered restart:\n{cluster.logs(pod)}")
    return evidence


def watch_way(cluster: Cluster, image: str, name: str = "example-watch") -> dict:
    """Sync with kubectl cp into the watched directory; nothing else, and restart-on-sync "false":
    the watch alone restarts the program."""
    pod = deploy(cluster, example_deployment(name, image, watch=True, restart_on_sync=False))
    before = cluster.starts(pod)[0]
    synced = _sync_greeting(cluster, pod, "synced into the watched directory")
    evidence = _restarted_in_place(cluster, pod, before, synced, "/app/data/greeting.txt")
    if "restarting /app/bin/example: /app/data" not in cluster.logs(pod):
        raise ScenarioFailure(f"the wrapper did not log a restart caused by /app/data:\n{cluster.logs(pod)}")
    return evidence
