"""Tilt itself drives the loop: `tilt up` on examples/tilt-crane/Tiltfile, against the real node.

No Docker anywhere: the Tiltfile's custom_build (build.sh) compiles the example app, lays it on
a base with crane and pushes it to the local registry; the pod has no `command`, so the webhook
reads ENTRYPOINT from that registry; containerd pulls over plain HTTP on loopback. Two bases:
none at all (`scratch`: no shell, no tar, no rm -- the wrapper's own serve Tilt's sync) and
busybox (which has its own tar and rm); in both, the wrapper's come first on the PATH the
webhook set, as restart-on-sync (the default) needs.
Then each edit of the synced data/greeting.txt is Tilt's live_update -- `tar` into the container
through the exec API, and no run step: the finished sync is what restarts the program -- and the
program, which reads that file once at start, must print the new greeting from a new process in
the same container. Deleting the file makes Tilt `rm -rf` it in the container (an exec of `rm`,
no shell), then run its `tar`, and the next start prints the app's no-file greeting.
(tests/node/test_restart_on_sync.py counts those restarts exactly, and takes restart-on-sync
through its other cases.)
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.live_update import NO_GREETING, WRAPPER, Cluster, ScenarioFailure, Start
from tests.support.webhook_server import delivery_of
from .pods import TIMINGS, program_of
from tests.support.tilt import Tilt, crane_example_settings

EXAMPLE = "tilt-crane"
APP = "tilt-crane-app"  # the Deployment, Tilt's resource, the image repository and the opt-in


@pytest.fixture(params=["scratch", "busybox"])
def tilt(request, restricted, node_plane, node_registry, node_images):
    base = "scratch" if request.param == "scratch" else node_images.busybox
    settings = crane_example_settings(node_registry.host, base, node_images.builder.crane, node_plane.kubeconfig)
    with Tilt(EXAMPLE, node_plane.kubeconfig, restricted.namespace, settings) as running:
        yield running


def running_pod(cluster: Cluster) -> dict | None:
    """The Deployment's one pod once its app container runs."""
    pods = json.loads(cluster.run("get", "pod", "-l", f"app={APP}", "-o", "json"))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(live) != 1:
        return None
    statuses = live[0]["status"].get("containerStatuses") or []
    return live[0] if any("running" in s.get("state", {}) for s in statuses) else None


def next_start(tilt: Tilt, cluster: Cluster, pod: str, container_id: str, before: list[Start],
               greeting: str) -> list[Start]:
    """Wait for the program's next start and check it read `greeting`: one new process, in the
    same container, which was never restarted."""
    starts = tilt.wait(lambda: s if len(s := cluster.starts(pod)) > len(before) else None,
                       f"a new start of the program after the change (expecting greeting={greeting!r})",
                       timeout=120, ignoring=(ScenarioFailure,))
    assert [s.greeting for s in starts[len(before):]] == [greeting], (
        f"expected exactly one new start with greeting={greeting!r}:\n{cluster.logs(pod)}")
    assert starts[-1].pid != before[-1].pid
    status = cluster.container_status(pod)
    assert (status["containerID"], status["restartCount"]) == (container_id, 0), status
    return starts


def test_tilt_up_reruns_the_program_in_place_on_each_edit_and_deletion(tilt, restricted, node_registry):
    cluster, greeting = restricted, tilt.example / "data" / "greeting.txt"
    pod_json = tilt.wait(lambda: running_pod(cluster), "Tilt to build, push and deploy the app",
                         ignoring=(ScenarioFailure,))
    pod, uid = pod_json["metadata"]["name"], pod_json["metadata"]["uid"]

    # Tilt built and pushed the image with crane, and the pod has no command of its own: the
    # webhook read ENTRYPOINT /app/bin/example (and no CMD: build.sh cleared busybox's) from the
    # registry, and the wrapper came as an image volume (containerd 2).
    (container,) = pod_json["spec"]["containers"]
    assert container["image"].startswith(f"{node_registry.host}/{APP}:tilt-build-"), container["image"]
    template = cluster.get("deployment", APP)["spec"]["template"]["spec"]
    assert "command" not in template["containers"][0], "the Tiltfile's pod should leave the program to the image"
    assert program_of(pod_json["spec"]) == ["/app/bin/example"]
    assert delivery_of(pod_json) == "image-volume"

    (first,) = tilt.wait(lambda: cluster.starts(pod), "the program's first start", ignoring=(ScenarioFailure,))
    assert first.greeting == greeting.read_text().strip()
    # Only the busybox image has `cat` and `ls` to look inside with; in both, the program's own
    # output shows what it read, and the container's status that it never restarted.
    shell = tilt.env["BASE_IMAGE"] != "scratch"
    if shell:
        assert cluster.pid1(pod)[0] == WRAPPER
    TIMINGS["tilt up until the program ran"] = time.monotonic() - tilt.started
    # An edit is live-updated only into a container Tilt has seen running its build.
    tilt.wait(lambda: tilt.get("uiresource", APP)["status"].get("runtimeStatus") == "ok",
              "Tilt to see the resource running", ignoring=(RuntimeError,))
    container_id = cluster.container_status(pod)["containerID"]

    starts = [first]
    for edit in ("first edit", "second edit"):
        text = f"{edit} {uuid.uuid4().hex[:8]}"
        greeting.write_text(text + "\n")
        starts = next_start(tilt, cluster, pod, container_id, starts, text)
        if shell:
            assert cluster.exec(pod, "cat", "/app/data/greeting.txt").strip() == text

    greeting.unlink()
    starts = next_start(tilt, cluster, pod, container_id, starts, NO_GREETING)  # the file is gone
    if shell:
        assert cluster.exec(pod, "ls", "-A", "/app/data").split() == [], "Tilt did not delete the file in the container"

    # All of it in place: the same pod and container, running, the wrapper still PID 1.
    assert "running" in cluster.container_status(pod)["state"]
    assert cluster.get("pod", pod)["metadata"]["uid"] == uid and running_pod(cluster)["metadata"]["uid"] == uid
    logs = cluster.logs(pod)
    assert logs.count("restarting /app/bin/example") == 3, logs
    assert logs.count("restarting /app/bin/example: a sync finished (tar -x)") == 3, logs
    if shell:
        assert cluster.pid1(pod)[0] == WRAPPER
    # ...and by live updates only: one image build, two syncs, one deletion, and no run step: the
    # syncs alone restarted the program.
    output = tilt.output()
    assert output.count("STEP 1/3 — Building Custom Build") == 1, output
    assert output.count("Will copy 1 file(s) to container") == 2, output
    assert output.count("Will delete 1 file(s) from container") == 1, output
    assert "[CMD" not in output, output
