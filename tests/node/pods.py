"""Pod manifests and waits for the node tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time

from tests.support.live_update import WRAPPER, Cluster, ScenarioFailure
from tests.support.webhook_server import delivery_of

# Seconds the session's steps took, printed at the end of the run (conftest.py).
TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def timed(step: str):
    started = time.monotonic()
    yield
    TIMINGS[step] = time.monotonic() - started

RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod(name: str, image: str, annotations: dict | None = None, command: list[str] | None = None,
        pod_security: dict | None = None, container_security: dict | None = None, **spec) -> dict:
    container = {"name": "app", "image": image}
    if command:
        container["command"] = command
    if container_security:
        container["securityContext"] = container_security
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {"restart-process.dev/enabled": "true", **(annotations or {})}},
        "spec": {"containers": [container], **({"securityContext": pod_security} if pod_security else {}), **spec},
    }


def shell_pod(name: str, image: str, script: str, annotations: dict | None = None, **spec) -> dict:
    """A busybox `sh -c SCRIPT` program, wrapped."""
    return pod(name, image, annotations, command=["sh", "-c", script], **spec)


def wait_running(cluster: Cluster, name: str) -> dict:
    """The pod once its app container runs; fails early, with the events, if it cannot start."""
    def running():
        current = cluster.get("pod", name)
        status = cluster.container_status(name)
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "CreateContainerError",
                                     "CreateContainerConfigError", "RunContainerError", "InvalidImageName"):
            raise AssertionError(f"{name} cannot start: {waiting}\n{events(cluster, name)}")
        return current if "running" in status.get("state", {}) else None

    try:
        return cluster.wait(running, f"{name} running")
    except ScenarioFailure as failure:
        raise AssertionError(f"{failure}\n{events(cluster, name)}") from None


def events(cluster: Cluster, name: str) -> str:
    items = json.loads(cluster.run("get", "events", "--field-selector", f"involvedObject.name={name}",
                                   "-o", "json", check=False) or '{"items": []}')["items"]
    return "\n".join(f"{e.get('reason')}: {e.get('message')}" for e in items)


def assert_delivered(pod_json: dict, delivery: str, wrapper_image: str) -> None:
    """The wrapper reached the pod the way `delivery` says, from `wrapper_image`: mounted as an
    image volume with no init container, or installed by an init container that finished."""
    spec, status = pod_json["spec"], pod_json["status"]
    assert delivery_of(pod_json) == delivery, pod_json["metadata"].get("annotations")
    (volume,) = [v for v in spec["volumes"] if v["name"] == "restart-process"]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    if delivery == "image-volume":
        assert volume["image"]["reference"] == wrapper_image and "emptyDir" not in volume, volume
        assert "restart-process-install" not in inits
    else:
        assert "emptyDir" in volume and "image" not in volume, volume
        assert inits[0] == "restart-process-install" and spec["initContainers"][0]["image"] == wrapper_image
        assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def wrapped(spec: dict, container: str = "app") -> bool:
    found = next(c for c in spec["containers"] if c["name"] == container)
    return (found.get("command") or [None])[0] == WRAPPER


def program_of(spec: dict, container: str = "app") -> list[str]:
    """What the wrapper runs: the words after `--` of the wrapped command, then the args."""
    found = next(c for c in spec["containers"] if c["name"] == container)
    command = found["command"]
    return command[command.index("--") + 1:] + (found.get("args") or [])


def wait_gone(cluster: Cluster, name: str, timeout: float) -> float:
    """Seconds until the pod object is gone."""
    started = time.monotonic()
    cluster.wait(lambda: not cluster.run("get", "pod", name, "--ignore-not-found", "-o", "name").strip(),
                 f"{name} deleted", timeout=timeout, interval=0.2)
    return time.monotonic() - started


class FollowedLogs:
    """`kubectl logs -f` in the background, so what the program says while it stops is kept
    after the pod is gone."""

    def __init__(self, cluster, name: str):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*cluster.kubectl, "--namespace", cluster.namespace, "logs", "-f", name, "-c", "app"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def text(self) -> str:
        return "".join(self.lines)

    def finish(self) -> str:
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.reader.join(timeout=5)
        return self.text()


def delete_and_time(cluster, name: str, timeout: float) -> tuple[float, str]:
    """Delete the pod (kubectl's default: the pod's grace period); seconds until it is gone, and
    what it logged meanwhile."""
    logs = FollowedLogs(cluster, name)
    cluster.wait(lambda: "program started" in logs.text(), "kubectl logs -f to follow")
    started = time.monotonic()
    cluster.run("delete", "pod", name, "--wait=false")
    wait_gone(cluster, name, timeout)
    return time.monotonic() - started, logs.finish()
