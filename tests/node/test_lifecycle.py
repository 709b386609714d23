"""What happens around the program in a real pod: it exits by itself (exit policies), the pod is
deleted (signals, stop timeout), and the webhook is down (fail open)."""

from __future__ import annotations

from tests.support.webhook_server import wait_for_mutation
from tests.support.live_update import WRAPPER
from .pods import RESTRICTED_CONTAINER, RESTRICTED_POD, TIMINGS, delete_and_time, pod, shell_pod, wait_running, wrapped

# Runs until /tmp/stop appears (an exec creates it), then exits 3. /tmp is the container's own.
EXITS_ON_REQUEST = ('echo "program started pid=$$"; while [ ! -e /tmp/stop ]; do sleep 0.2; done; '
                    'rm -f /tmp/stop; echo "program exiting with 3"; exit 3')


def test_exit_policy_restart_lets_the_kubelet_restart_the_container_wrapped(cluster, node_images):
    manifest = shell_pod("exit-restart", node_images.busybox, EXITS_ON_REQUEST,
                         {"restart-process.dev/exit-policy": "restart"},
                         volumes=[{"name": "scratch", "emptyDir": {}}])
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    cluster.apply(manifest)
    wait_running(cluster, "exit-restart")
    cluster.wait(lambda: "program started" in cluster.logs("exit-restart"), "the program's start")
    first = cluster.container_status("exit-restart")["containerID"]

    cluster.exec("exit-restart", "sh", "-c", "echo kept > /scratch/marker && touch /tmp/stop")

    def restarted():
        s = cluster.container_status("exit-restart")
        return s if s.get("restartCount") == 1 and "running" in s.get("state", {}) and s.get("containerID") != first else None

    status = cluster.wait(restarted, "the kubelet to restart the container")
    assert status["lastState"]["terminated"]["exitCode"] == 3  # the program's status, through the wrapper
    assert "program exiting with 3" in cluster.logs("exit-restart", previous=True)
    cluster.wait(lambda: "program started" in cluster.logs("exit-restart"), "the program's start, wrapped again")
    assert cluster.pid1("exit-restart")[0] == WRAPPER  # the wrapper binary survived in its emptyDir
    assert cluster.exec("exit-restart", "cat", "/scratch/marker").strip() == "kept"


def test_exit_policy_continue_keeps_the_container_and_the_next_trigger_starts_the_program(cluster, node_images):
    cluster.apply(shell_pod("exit-continue", node_images.busybox, EXITS_ON_REQUEST,
                            {"restart-process.dev/exit-policy": "continue"}))
    wait_running(cluster, "exit-continue")
    cluster.wait(lambda: "program started" in cluster.logs("exit-continue"), "the program's start")
    container = cluster.container_status("exit-continue")["containerID"]

    cluster.exec("exit-continue", "touch", "/tmp/stop")
    cluster.wait(lambda: "program exiting with 3" in cluster.logs("exit-continue"), "the program's exit")
    cluster.exec("exit-continue", WRAPPER, "trigger")  # the container is still there to exec into

    cluster.wait(lambda: cluster.logs("exit-continue").count("program started") == 2, "a second start")
    status = cluster.container_status("exit-continue")
    assert status["containerID"] == container and status["restartCount"] == 0 and "running" in status["state"]


def test_pod_deletion_sigterm_reaches_the_program(cluster, node_images):
    script = 'trap "echo program got SIGTERM; exit 0" TERM; echo "program started pid=$$"; while :; do sleep 1; done'
    cluster.apply(shell_pod("graceful", node_images.busybox, script))
    wait_running(cluster, "graceful")
    cluster.wait(lambda: "program started" in cluster.logs("graceful"), "the program's start")
    assert cluster.pid1("graceful")[0] == WRAPPER

    elapsed, output = delete_and_time(cluster, "graceful", timeout=60)
    TIMINGS["deleting a pod whose program handles SIGTERM"] = elapsed
    assert "program got SIGTERM" in output, output
    assert elapsed < 30, f"{elapsed:.1f}s"


def test_pod_deletion_a_program_ignoring_sigterm_is_killed_at_the_stop_timeout(cluster, node_images):
    """Without the wrapper the kubelet would wait out the 60 s grace period."""
    script = 'trap "" TERM; echo "program started pid=$$"; while :; do sleep 1; done'
    manifest = shell_pod("stubborn", node_images.busybox, script, {"restart-process.dev/stop-timeout": "2s"},
                         terminationGracePeriodSeconds=60)
    cluster.apply(manifest)
    wait_running(cluster, "stubborn")
    cluster.wait(lambda: "program started" in cluster.logs("stubborn"), "the program's start")

    elapsed, output = delete_and_time(cluster, "stubborn", timeout=90)
    TIMINGS["deleting a pod whose program ignores SIGTERM (grace 60s)"] = elapsed
    assert elapsed < 30, f"the pod took {elapsed:.1f}s to go (grace period 60s, stop timeout 2s):\n{output}"
    assert "SIGKILL" in output, output


def test_with_the_webhook_stopped_an_annotated_pod_still_runs_unwrapped(cluster, node_images, node_webhook, node_core):
    node_webhook.stop()
    try:
        cluster.apply(pod("unwrapped", node_images.app, command=["/app/bin/example"],
                          pod_security=RESTRICTED_POD, container_security=RESTRICTED_CONTAINER))
        running = wait_running(cluster, "unwrapped")
        assert not wrapped(running["spec"]) and not running["spec"].get("initContainers")
        assert "restart-process.dev/injected" not in running["metadata"]["annotations"]
        (start,) = cluster.wait_starts("unwrapped", 1)
        assert start.pid == 1  # the program itself is PID 1: nothing wraps it
    finally:
        node_webhook.start()
        wait_for_mutation(node_core, "default")
