"""The product's core claim in real pods on a real node: the webhook wraps the program, and a
sync re-executes it inside the running container -- driven by kubectl as Tilt drives it.

The three ways a sync re-runs the program -- the sync alone (restart-on-sync), the trigger, the
watch -- are tests/support/live_update.py's, the scenario the kind e2e runs too.
(tests/node/test_restart_on_sync.py takes restart-on-sync through its other cases.)
"""

from __future__ import annotations

import re

import pytest

from tests.support.live_update import (WRAPPER, ScenarioFailure, deploy, example_deployment, sync_way, tilt_way,
                                       watch_way)
from .pods import RESTRICTED_CONTAINER, RESTRICTED_POD, assert_delivered, pod, program_of, wait_running, wrapped


@pytest.mark.both_runtimes
def test_a_deployment_without_command_runs_through_the_wrapper(restricted, node_images, expected_delivery):
    """Through kube-controller-manager and kube-scheduler, with only the `images` annotation:
    the webhook reads ENTRYPOINT from the local registry, the wrapper comes from the wrapper image
    -- mounted as an image volume on containerd 2, installed by the init container on 1.6 --
    and the app runs as its child."""
    deployment = example_deployment("no-command", node_images.app, watch=False)
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"] = {"restart-process.dev/images": "example-app"}
    del template["spec"]["containers"][0]["command"]

    name = deploy(restricted, deployment)  # fails unless the pod was mutated and the program started
    pod_json = restricted.get("pod", name)
    spec, status = pod_json["spec"], pod_json["status"]
    assert pod_json["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert spec["nodeName"] == "localhost"
    assert program_of(spec) == ["/app/bin/example"], "ENTRYPOINT not resolved from the registry"
    assert_delivered(pod_json, expected_delivery, node_images.wrapper)
    if expected_delivery == "init-container":
        assert "installed /restart-process/restart-wrapper" in restricted.logs(name, "restart-process-install")
    assert status["containerStatuses"][0]["restartCount"] == 0

    assert restricted.pid1(name)[0] == WRAPPER
    (start,) = restricted.starts(name)
    assert start.pid != 1, "the program is PID 1: it is not running under the wrapper"


def test_restart_on_sync_kubectl_cp_alone_restarts(restricted, node_images):
    evidence = sync_way(restricted, node_images.app)
    assert evidence["restartCount"] == 0 and evidence["pids"][0] != evidence["pids"][1]


@pytest.mark.both_runtimes
def test_the_tilt_way_kubectl_cp_then_trigger(restricted, node_images):
    """restart-on-sync "false", as for live updates whose run steps build: the trigger restarts."""
    evidence = tilt_way(restricted, node_images.app)
    assert evidence["restartCount"] == 0 and evidence["pids"][0] != evidence["pids"][1]


def test_watch_mode_kubectl_cp_alone_restarts(restricted, node_images):
    evidence = watch_way(restricted, node_images.app)
    assert evidence["restartCount"] == 0 and evidence["pids"][0] != evidence["pids"][1]


def _trigger_restarts(cluster, name: str) -> None:
    wait_running(cluster, name)
    (first,) = cluster.wait_starts(name, 1)
    cluster.exec(name, WRAPPER, "trigger")  # fails at once, with the wrapper's reason, if it cannot write
    starts = cluster.wait_starts(name, 2)
    assert starts[1].pid != first.pid
    assert cluster.container_status(name)["restartCount"] == 0


def test_trigger_in_an_image_with_no_shell_and_no_tmp(restricted, node_images):
    """FROM-scratch style: the static app alone, no /tmp for the default restart file."""
    manifest = pod("scratch", node_images.scratch_app, pod_security=RESTRICTED_POD,
                   container_security=RESTRICTED_CONTAINER)
    restricted.apply(manifest)
    _trigger_restarts(restricted, "scratch")


@pytest.mark.both_runtimes
def test_trigger_with_a_read_only_root_filesystem_and_an_arbitrary_uid(restricted, node_images, expected_delivery):
    """As OpenShift runs pods: a uid from the namespace's range, and a read-only root. The image
    volume's files (root's, 0755) run for any uid, as the emptyDir's copy does."""
    manifest = pod("readonly", node_images.app, command=["/app/bin/example"],
                   pod_security={**RESTRICTED_POD, "runAsUser": 1000740000, "fsGroup": 1000740000},
                   container_security={**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": True})
    restricted.apply(manifest)
    _trigger_restarts(restricted, "readonly")
    assert restricted.exec("readonly", "id", "-u").strip() == "1000740000"
    assert_delivered(restricted.get("pod", "readonly"), expected_delivery, node_images.wrapper)


def test_the_init_container_still_delivers_on_containerd_2_when_the_pod_asks(restricted, node_images):
    """`restart-process.dev/delivery: init-container` overrides `auto`: the copy into an emptyDir
    works on containerd 2 as on 1.6, and the trigger restarts the program."""
    manifest = pod("by-init", node_images.app, {"restart-process.dev/delivery": "init-container"},
                   command=["/app/bin/example"], pod_security=RESTRICTED_POD, container_security=RESTRICTED_CONTAINER)
    restricted.apply(manifest)
    _trigger_restarts(restricted, "by-init")
    assert_delivered(restricted.get("pod", "by-init"), "init-container", node_images.wrapper)


@pytest.mark.both_runtimes
def test_restricted_namespace_admits_and_runs_the_injected_pod(restricted, node_images, expected_delivery):
    """Pod Security "restricted" is enforced (a non-compliant pod is refused), and the annotated
    pod is admitted and runs -- with its image volume on containerd 2 (restricted allows `image`
    volumes since Kubernetes 1.33), with its init container on 1.6."""
    with pytest.raises(ScenarioFailure, match="violates PodSecurity"):
        restricted.apply(pod("careless", node_images.app, command=["/app/bin/example"]))
    manifest = pod("restricted", node_images.app, command=["/app/bin/example"],
                   pod_security=RESTRICTED_POD, container_security=RESTRICTED_CONTAINER)
    restricted.apply(manifest)
    running = wait_running(restricted, "restricted")
    assert wrapped(running["spec"])
    assert_delivered(running, expected_delivery, node_images.wrapper)
    assert restricted.pid1("restricted")[0] == WRAPPER
    assert re.search(r"started pid=\d+", restricted.logs("restricted"))
