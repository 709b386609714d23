"""Live update into an image with no shell and no tar: the wrapper brings the sync tools.

`kubectl cp` runs `test -d DEST` and `tar -xmf - -C DIR` in the container through the exec API,
Tilt runs `tar -C / -x -f -` and `rm -rf PATH...`; the runtime finds them on the container's PATH.
/restart-process/bin/{tar,rm,test} are links to the wrapper -- in the wrapper image, mounted as an
image volume on containerd 2; laid down by the install container on 1.6 -- and the webhook
appends that directory to PATH -- here the runtime's default PATH, as the image's config sets
none. The image holds the example app and its data directory, nothing else.
(tests/node/test_tilt.py runs Tilt itself against such an image.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.support.live_update import NO_GREETING, WRAPPER, ScenarioFailure
from webhook.synctools import RUNTIME_DEFAULT_PATH
from .pods import RESTRICTED_CONTAINER, RESTRICTED_POD, assert_delivered, pod, wait_running

TOOLS = "/restart-process/bin"


def _scratch_pod(name: str, image: str, annotations: dict | None = None) -> dict:
    """The scratch example app, without `command`: ENTRYPOINT and PATH both come from the registry."""
    return pod(name, image, annotations, pod_security=RESTRICTED_POD, container_security=RESTRICTED_CONTAINER)


def _env(spec: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in spec["containers"][0].get("env") or []}


@pytest.mark.both_runtimes
def test_kubectl_cp_and_rm_in_an_image_with_only_a_static_program(restricted, node_images, expected_delivery):
    cluster = restricted
    cluster.apply(_scratch_pod("bare", node_images.scratch_app))
    assert_delivered(wait_running(cluster, "bare"), expected_delivery, node_images.wrapper)
    (first,) = cluster.wait_starts("bare", 1)
    assert first.greeting == NO_GREETING
    spec = cluster.get("pod", "bare")["spec"]
    assert _env(spec)["PATH"] == f"{TOOLS}:{RUNTIME_DEFAULT_PATH}"  # first: restart-on-sync, the default
    container_id = cluster.container_status("bare")["containerID"]

    # kubectl cp into a directory: `test -d /app/data` first (the wrapper's test: true, so the file
    # goes into it, as greeting.txt), then `tar -xmf - -C /app/data` -- the wrapper's tar. Both
    # found on PATH. Without test, kubectl would have copied onto /app/data itself.
    with tempfile.TemporaryDirectory() as local:
        (Path(local) / "greeting.txt").write_text("synced into a scratch image\n")
        cluster.copy(Path(local) / "greeting.txt", "bare", "/app/data/")
    # The copy restarted the program already (restart-on-sync); this trigger, the Tilt way, is
    # folded into that restart: three starts in all below, not four.
    cluster.exec("bare", WRAPPER, "trigger")
    starts = cluster.wait(lambda: s if len(s := cluster.starts("bare")) >= 2 else None, "a second start")
    assert [s.greeting for s in starts] == [NO_GREETING, "synced into a scratch image"], cluster.logs("bare")

    # Tilt's deletion: `rm -rf` with a file that exists and one that does not.
    cluster.exec("bare", "rm", "-rf", "/app/data/greeting.txt", "/app/data/never-synced")
    cluster.exec("bare", WRAPPER, "trigger")
    starts = cluster.wait(lambda: s if len(s := cluster.starts("bare")) >= 3 else None, "a third start")
    assert starts[-1].greeting == NO_GREETING, "rm did not delete the synced file"

    assert len({s.pid for s in starts}) == 3
    status = cluster.container_status("bare")
    assert (status["containerID"], status["restartCount"]) == (container_id, 0), status


def test_without_the_sync_tools_the_image_has_no_tar(restricted, node_images):
    """The control: sync-tools "false" leaves PATH alone, and the same kubectl cp finds no tar."""
    cluster = restricted
    cluster.apply(_scratch_pod("no-tools", node_images.scratch_app, {"restart-process.dev/sync-tools": "false"}))
    wait_running(cluster, "no-tools")
    assert "PATH" not in _env(cluster.get("pod", "no-tools")["spec"])
    with tempfile.TemporaryDirectory() as local:
        (Path(local) / "greeting.txt").write_text("never arrives\n")
        try:
            cluster.copy(Path(local) / "greeting.txt", "no-tools", "/app/data/greeting.txt")
        except ScenarioFailure as failure:
            assert '"tar": executable file not found' in str(failure), failure
        else:
            raise AssertionError("kubectl cp worked in an image without tar")
    # The tools are still there, by their full path.
    cluster.exec("no-tools", f"{TOOLS}/rm", "-f", "/app/data/nothing")


@pytest.mark.both_runtimes
@pytest.mark.parametrize("restart_on_sync", ["true", "false"])
def test_the_image_path_runtime_default_is_what_the_webhook_adds_to(cluster, node_images, restart_on_sync):
    """The seam: for an image whose config sets no PATH, the webhook writes the runtime's default
    PATH plus the tools. containerd must give an unwrapped container exactly that default, or the
    webhook would change what the program sees. With restart-on-sync the tools come first for what
    is exec'd into the container (the sync must run our tar) and last for the program; without it,
    last for both, and the image's own tar wins."""
    plain = pod("plain", node_images.busybox_without_env, command=["sleep", "3600"])
    del plain["metadata"]["annotations"]  # not opted in: what the runtime alone gives
    wrapped = pod("wrapped", node_images.busybox_without_env, command=["sleep", "3600"])
    wrapped["metadata"]["annotations"]["restart-process.dev/restart-on-sync"] = restart_on_sync
    cluster.apply(plain)
    cluster.apply(wrapped)
    wait_running(cluster, "plain")
    wait_running(cluster, "wrapped")
    assert "initContainers" not in cluster.get("pod", "plain")["spec"]

    def path_of(name: str) -> str:
        lines = cluster.exec(name, "env").splitlines()
        return next(line for line in lines if line.startswith("PATH="))[len("PATH="):]

    def program_path(name: str) -> str:
        """PATH in the environment of the program: the wrapper's (pid 1's) one child. (Not pid 2:
        runc's init takes pids for its threads before it becomes the wrapper.)"""
        (program,) = cluster.exec(name, "cat", "/proc/1/task/1/children").split()
        assert cluster.exec(name, "cat", f"/proc/{program}/cmdline").split("\0")[0] == "sleep"
        variables = cluster.exec(name, "cat", f"/proc/{program}/environ").split("\0")
        return next(v for v in variables if v.startswith("PATH="))[len("PATH="):]

    assert path_of("plain") == RUNTIME_DEFAULT_PATH
    assert program_path("wrapped") == f"{RUNTIME_DEFAULT_PATH}:{TOOLS}"
    if restart_on_sync == "true":
        assert path_of("wrapped") == f"{TOOLS}:{RUNTIME_DEFAULT_PATH}"
        assert cluster.exec("wrapped", "which", "-a", "tar").split() == [f"{TOOLS}/tar", "/bin/tar"]
    else:
        assert path_of("wrapped") == f"{RUNTIME_DEFAULT_PATH}:{TOOLS}"
        # busybox's own tar wins; the wrapper's is found only where the image has none.
        assert cluster.exec("wrapped", "which", "-a", "tar").split() == ["/bin/tar", f"{TOOLS}/tar"]
