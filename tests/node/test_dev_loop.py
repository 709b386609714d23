"""The dev loop's failure modes in real pods: a crash after a sync, a liveness probe that fires
while the program is down, the image's stop signal, and a synced environment file."""

from __future__ import annotations

import pytest

import json
import re
import subprocess

from tests.support.live_update import WRAPPER

from .images import Entry, Image, busybox_entries
from .pods import TIMINGS, delete_and_time, shell_pod, wait_running

# A program that reads synced files: /work/version at start, and crashes while /work/crash
# exists. While it runs, /tmp/alive exists: what the liveness probes below check.
READS_SYNCED_FILES = ('mkdir -p /work; echo "program started version=$(cat /work/version 2>/dev/null)"; '
                      'if [ -e /work/crash ]; then rm -f /tmp/alive; echo "program crashing"; exit 4; fi; '
                      'touch /tmp/alive; while :; do sleep 0.2; done')


def _wait_matches(cluster, pod: str, pattern: str, count: int) -> list[str]:
    """The first group of each match of `pattern` in the pod's log, once there are `count`."""
    return cluster.wait(lambda: len(found := re.findall(pattern, cluster.logs(pod))) >= count and found,
                        f"{count} lines like {pattern!r} from {pod}")


def _sync(cluster, pod: str, path: str, content: str | None) -> None:
    """What a sync does to one file (kubectl cp needs a local file; exec is enough here)."""
    script = f"rm -f {path}" if content is None else f"mkdir -p $(dirname {path}) && printf %s '{content}' > {path}"
    cluster.exec(pod, "sh", "-c", script)


def test_a_crash_after_a_sync_keeps_the_container_and_the_synced_files(cluster, node_images):
    """rerun, the default: the program is run again in place, backing off, until the fix arrives."""
    cluster.apply(shell_pod("crash", node_images.busybox, READS_SYNCED_FILES))
    wait_running(cluster, "crash")
    cluster.wait(lambda: "program started" in cluster.logs("crash"), "the program's start")
    container = cluster.container_status("crash")["containerID"]

    _sync(cluster, "crash", "/work/version", "v1")
    _sync(cluster, "crash", "/work/crash", "bug")
    cluster.exec("crash", WRAPPER, "trigger")
    logs = cluster.wait(lambda: (text := cluster.logs("crash")).count("program crashing") >= 2 and text,
                        "the crashing program to be run again")
    # One line per end of the program, from the wrapper: how it ended, what next, when.
    assert "exited with status 4" in logs and "running it again in 1s (exit-policy rerun)" in logs

    _sync(cluster, "crash", "/work/crash", None)  # the fix
    _sync(cluster, "crash", "/work/version", "v2")
    cluster.exec("crash", WRAPPER, "trigger")
    cluster.wait(lambda: "program started version=v2" in cluster.logs("crash"), "the fixed program to run")

    status = cluster.container_status("crash")
    assert status["containerID"] == container and status["restartCount"] == 0 and "running" in status["state"]
    assert cluster.exec("crash", "cat", "/work/version") == "v2"  # the synced file is still there


def _probe_pod(name: str, image: str, policy: str | None) -> dict:
    manifest = shell_pod(name, image, READS_SYNCED_FILES,
                         {"restart-process.dev/liveness-probe": policy} if policy else None)
    manifest["spec"]["containers"][0]["livenessProbe"] = {
        "exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2,
    }
    return manifest


def _apply_with_warnings(cluster, manifest: dict) -> str:
    result = subprocess.run([*cluster.kubectl, "--namespace", cluster.namespace, "apply", "-f", "-"],
                            input=json.dumps(manifest), capture_output=True, text=True, check=True)
    return result.stderr


def _crash_for_a_while(cluster, name: str) -> None:
    _sync(cluster, name, "/work/version", "v1")
    _sync(cluster, name, "/work/crash", "bug")
    cluster.exec(name, WRAPPER, "trigger")
    # Three crashes (about 1 + 2 s of back-off): the probe (every 1 s, 2 failures) had its chance.
    cluster.wait(lambda: cluster.logs(name).count("program crashing") >= 3 or cluster.container_status(name).get(
        "restartCount", 0) > 0, "three crashes, or a restart by the kubelet")


def test_a_kept_liveness_probe_is_a_warning_and_really_loses_the_synced_files(cluster, node_images):
    """The risk the warning names, shown: the kubelet restarts the container, the files are gone."""
    warnings = _apply_with_warnings(cluster, _probe_pod("probe-kept", node_images.busybox, None))
    assert 'container "app" has a livenessProbe' in warnings and '"remove" or "relax"' in warnings
    wait_running(cluster, "probe-kept")
    cluster.wait(lambda: "program started" in cluster.logs("probe-kept"), "the program's start")
    _crash_for_a_while(cluster, "probe-kept")
    status = cluster.wait(lambda: (s := cluster.container_status("probe-kept")).get("restartCount", 0) >= 1 and s,
                          "the kubelet to restart the container")
    assert status["restartCount"] >= 1
    wait_running(cluster, "probe-kept")
    missing = cluster.exec("probe-kept", "sh", "-c", "cat /work/version || echo gone", check=False)
    assert "gone" in missing  # a new container from the image: the sync is lost


def test_a_removed_liveness_probe_lets_the_program_crash_without_losing_the_container(cluster, node_images):
    warnings = _apply_with_warnings(cluster, _probe_pod("probe-removed", node_images.busybox, "remove"))
    assert "livenessProbe" not in warnings
    running = wait_running(cluster, "probe-removed")
    assert "livenessProbe" not in running["spec"]["containers"][0]
    status_annotation = json.loads(running["metadata"]["annotations"]["restart-process.dev/injected"])
    assert status_annotation["containers"]["app"]["livenessProbe"]["exec"]["command"] == ["cat", "/tmp/alive"]
    cluster.wait(lambda: "program started" in cluster.logs("probe-removed"), "the program's start")
    _crash_for_a_while(cluster, "probe-removed")
    assert cluster.container_status("probe-removed")["restartCount"] == 0
    assert cluster.exec("probe-removed", "cat", "/work/version") == "v1"


# Stops gracefully on WINCH only, as Apache httpd does; TERM would kill it mid-request. Its
# ENTRYPOINT prints its pid with $$: a string from the image config, which the kubelet would
# have turned into a literal "$" had the webhook not escaped it.
GRACEFUL_ON_WINCH = ('trap "echo program got WINCH; exit 0" WINCH; trap "echo program got TERM; exit 1" TERM; '
                     'echo "program started pid=$$"; while :; do sleep 0.2; done')


@pytest.mark.both_runtimes
def test_the_images_stop_signal_stops_the_program_for_restarts_and_deletion(cluster, node_images):
    image = node_images.builder.push(Image(
        "graceful-on-winch", [*busybox_entries(), Entry("tmp", mode=0o1777, directory=True)],
        entrypoint=["sh", "-c", GRACEFUL_ON_WINCH], stop_signal="SIGWINCH"))
    manifest = shell_pod("winch", image, "unused")
    del manifest["spec"]["containers"][0]["command"]  # the program comes from the image config
    cluster.apply(manifest)
    running = wait_running(cluster, "winch")
    assert "--stop-signal=WINCH" in running["spec"]["containers"][0]["command"]
    _wait_matches(cluster, "winch", r"program started pid=(\d+)", 1)  # "$$" reached the shell as "$$", not "$"

    cluster.exec("winch", WRAPPER, "trigger")
    cluster.wait(lambda: "program got WINCH" in cluster.logs("winch"), "the restart to stop it with WINCH")
    _wait_matches(cluster, "winch", r"program started pid=(\d+)", 2)
    assert "program got TERM" not in cluster.logs("winch")

    elapsed, output = delete_and_time(cluster, "winch", timeout=60)
    TIMINGS["deleting a pod whose image stops it with WINCH"] = elapsed
    assert output.count("program got WINCH") == 2 and "program got TERM" not in output, output
    assert elapsed < 20, f"{elapsed:.1f}s"  # the container's grace period is 30 s


def test_an_env_file_synced_in_changes_the_programs_environment_without_a_new_pod(cluster, node_images):
    script = 'echo "program started greeting=${GREETING:-none}"; while :; do sleep 0.2; done'
    cluster.apply(shell_pod("envfile", node_images.busybox, script, {"restart-process.dev/env-file": "/work/.env"}))
    wait_running(cluster, "envfile")
    cluster.wait(lambda: "program started greeting=none" in cluster.logs("envfile"), "the first start")
    container = cluster.container_status("envfile")["containerID"]

    _sync(cluster, "envfile", "/work/.env", "# synced\nexport GREETING=\"hello from the sync\"\nNOT VALID\n")
    cluster.exec("envfile", WRAPPER, "trigger")
    logs = cluster.wait(lambda: "greeting=hello from the sync" in (text := cluster.logs("envfile")) and text,
                        "the program to see the synced variable")
    assert "/work/.env:3:" in logs  # the malformed line, reported by number
    assert cluster.container_status("envfile")["containerID"] == container
