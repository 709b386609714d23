"""restart-on-sync in real pods, with the real clients: the sync itself re-runs the program.

With restart-process.dev/restart-on-sync (the webhook's default), the container's PATH has the
wrapper's tools (/restart-process/bin) first and the wrapper runs with --sync-file: the `tar -x`
and `rm` that Tilt's sync and `kubectl cp` exec into the container are the wrapper's, and they
report a finished sync to the wrapper, which restarts the program -- at once after a `tar`, and
after a 1 s grace after an `rm` (Tilt runs `rm -rf` then `tar` when an edit deletes and changes
files). A `tar` that fails restarts nothing.

Each test counts the program's starts exactly: once the start it expects is there, it waits
SETTLE seconds and asserts that no other start followed. SETTLE is three times the 1 s grace an
`rm`'s restart waits for, and longer than anything else that could start the program late (Tilt's
200 ms debounce, the runtime's exec round trips). And each checks that the container itself never
restarted (the same container ID, restartCount 0).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.support.live_update import NO_GREETING, RESTART_ON_SYNC, WRAPPER, Cluster, ScenarioFailure, Start
from tests.support.tilt import Tilt, crane_example_settings
from webhook.synctools import RUNTIME_DEFAULT_PATH
from .pods import RESTRICTED_CONTAINER, RESTRICTED_POD, pod, shell_pod, wait_running

SETTLE = 3.0  # seconds with no further start: 3x the rm's 1 s grace
TOOLS = "/restart-process/bin"
SYNC_FILE = "/run/restart-process/app.sync"  # the webhook's, for the container named app
SYNC_ENV = "RESTART_WRAPPER_SYNC_FILE"
RESTARTING = re.compile(r"restart-wrapper: restarting /app/bin/example: (.*)")
BY_TAR = "a sync finished (tar -x)"
EXAMPLE = "tilt-crane"
APP = "tilt-crane-app"  # the example's Deployment, Tilt resource, image repository and opt-in
TRIGGER_STEP = "run(['/restart-process/restart-wrapper', 'trigger'])"


# --- what the program did -------------------------------------------------------------------

def causes(cluster: Cluster, name: str) -> list[str]:
    """Why the wrapper restarted the example program, each time, from its log."""
    return RESTARTING.findall(cluster.logs(name))


def exactly(cluster: Cluster, name: str, count: int, what: str, wait=None) -> list[Start]:
    """The program's starts once there are `count`, checked to be still exactly `count` SETTLE
    seconds later. `wait` is the wait to use (Tilt's, which shows its output on failure)."""
    wait = wait or cluster.wait
    wait(lambda: len(cluster.starts(name)) >= count, f"{count} starts of the program: {what}", timeout=120)
    time.sleep(SETTLE)
    starts = cluster.starts(name)
    assert len(starts) == count, (f"expected exactly {count} starts ({what}), {SETTLE}s after the last expected, "
                                  f"got {len(starts)}:\n{cluster.logs(name)}")
    return starts


def in_place(cluster: Cluster, name: str, container_id: str) -> None:
    """The same container, never restarted, still running."""
    status = cluster.container_status(name)
    assert (status["containerID"], status["restartCount"]) == (container_id, 0), status
    assert "running" in status["state"], status


def env_of(spec: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in spec["containers"][0].get("env") or []}


def assert_restart_on_sync(spec: dict, on: bool) -> None:
    """What the webhook gave the container: --sync-file, its variable and the tools first on PATH
    with restart-on-sync; none of it, and the tools last, without."""
    command, env = spec["containers"][0]["command"], env_of(spec)
    tools_first = env["PATH"].split(":")[0] == TOOLS
    if on:
        assert f"--sync-file={SYNC_FILE}" in command[:command.index("--")], command
        assert env.get(SYNC_ENV) == SYNC_FILE and tools_first, env
    else:
        assert not any(a.startswith("--sync-file") for a in command), command
        assert SYNC_ENV not in env and env["PATH"].split(":")[-1] == TOOLS and not tools_first, env


def synced_greeting(cluster: Cluster, name: str, what: str, remote: str = "/app/data/") -> str:
    """kubectl cp a new greeting.txt into /app/data (`test -d`, then `tar -xmf - -C /app/data`)."""
    text = f"{what} {uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as local:
        (Path(local) / "greeting.txt").write_text(text + "\n")
        cluster.copy(Path(local) / "greeting.txt", name, remote)
    return text


def tar_x(cluster: Cluster, name: str, archive: bytes, *command: str) -> str:
    """`kubectl exec -i NAME -- COMMAND` fed `archive` (default: `tar -x -f - -C /app/data`), as
    Tilt's sync and kubectl cp run tar. The exec must fail; returns what kubectl said (the
    command's stderr, and its exit code)."""
    with pytest.raises(ScenarioFailure) as failed:
        cluster.run("exec", "-i", name, "-c", "app", "--", *(command or ("tar", "-x", "-f", "-", "-C", "/app/data")),
                    input=archive)
    return str(failed.value)


def archive(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def example_pod(name: str, image: str, annotations: dict | None = None) -> dict:
    """The example app without `command` (ENTRYPOINT and PATH come from the registry), restricted."""
    return pod(name, image, annotations, pod_security=RESTRICTED_POD, container_security=RESTRICTED_CONTAINER)


def started(cluster: Cluster, name: str) -> tuple[Start, str]:
    """Once the pod runs: its program's one start so far, and its container's ID."""
    wait_running(cluster, name)
    (first,) = cluster.wait_starts(name, 1)
    return first, cluster.container_status(name)["containerID"]


# --- kubectl ---------------------------------------------------------------------------------

@pytest.mark.both_runtimes
def test_kubectl_cp_alone_restarts_the_program_once(restricted, node_images):
    """Into an image with no tar of its own (the static app alone): kubectl cp's `test -d` and
    `tar` are the wrapper's, and nothing else is needed. The control, restart-on-sync "false":
    the same copy arrives, and nothing restarts until a trigger."""
    cluster = restricted
    cluster.apply(example_pod("synced", node_images.scratch_app))
    cluster.apply(example_pod("control", node_images.scratch_app, {RESTART_ON_SYNC: "false"}))
    first, container_id = started(cluster, "synced")
    assert first.greeting == NO_GREETING
    spec = cluster.get("pod", "synced")["spec"]
    assert_restart_on_sync(spec, on=True)
    assert env_of(spec)["PATH"] == f"{TOOLS}:{RUNTIME_DEFAULT_PATH}"

    for i in (1, 2):
        text = synced_greeting(cluster, "synced", f"kubectl cp {i}")
        starts = exactly(cluster, "synced", 1 + i, f"kubectl cp {i}")
        assert starts[-1].greeting == text and len({s.pid for s in starts}) == 1 + i, cluster.logs("synced")
    assert causes(cluster, "synced") == [BY_TAR, BY_TAR], cluster.logs("synced")
    in_place(cluster, "synced", container_id)

    _, control_id = started(cluster, "control")
    assert_restart_on_sync(cluster.get("pod", "control")["spec"], on=False)
    text = synced_greeting(cluster, "control", "kubectl cp, restart-on-sync off")
    exactly(cluster, "control", 1, "kubectl cp with restart-on-sync off: no restart")
    cluster.exec("control", WRAPPER, "trigger")  # the copy did arrive: the next start reads it
    assert exactly(cluster, "control", 2, "the trigger")[-1].greeting == text
    in_place(cluster, "control", control_id)


def test_a_tar_that_fails_restarts_nothing(restricted, node_images):
    """Tilt's and kubectl cp's `tar -x -f -` fed an archive that is not one, one with a member
    outside the target, one cut short: each exec fails with the tar's message, and the program
    is not restarted. Nor is it after an `rm` that a failed `tar` follows (Tilt's deletion, then
    its sync of the rest): a sync that did not finish restarts nothing. Then the same `rm` alone
    restarts it once, and so does a whole copy: the failures are the reason, not a pod that never
    restarts."""
    cluster = restricted
    cluster.apply(example_pod("failing", node_images.app))  # busybox's sh, ls and cat to look with
    _, container_id = started(cluster, "failing")
    assert cluster.exec("failing", "which", "tar").strip() == f"{TOOLS}/tar"  # the failing tar is ours

    message = tar_x(cluster, "failing", b"not a tar archive\n" * 600)
    assert "This does not look like a tar archive" in message, message
    exactly(cluster, "failing", 1, "after a tar of something that is not an archive")

    message = tar_x(cluster, "failing", archive(("../outside.txt", b"escaped\n"), ("inside.txt", b"kept\n")))
    assert "Member name contains '..'" in message, message
    assert "outside.txt" not in cluster.exec("failing", "ls", "-A", "/app").split()
    exactly(cluster, "failing", 1, "after a tar with a member outside the target")

    whole = archive(("greeting.txt", b"from an archive cut short\n" * 100))
    message = tar_x(cluster, "failing", whole[:700])
    assert "Unexpected EOF in archive" in message, message
    exactly(cluster, "failing", 1, "after a tar of an archive cut short")

    # An rm, then a tar that fails, one straight after the other: in one exec, so that no exec
    # round trip in between can outlast the rm's grace. By their full paths: busybox's sh runs its
    # own applets for `rm` and `tar`, whatever PATH says.
    cluster.exec("failing", "sh", "-c", "echo doomed > /app/data/doomed.txt")
    message = tar_x(cluster, "failing", b"not a tar archive\n" * 600, "sh", "-c",
                    f"{TOOLS}/rm -rf /app/data/doomed.txt && {TOOLS}/tar -x -f - -C /app/data")
    assert "This does not look like a tar archive" in message, message
    assert "doomed.txt" not in cluster.exec("failing", "ls", "-A", "/app/data").split(), "the rm did not run"
    exactly(cluster, "failing", 1, "after an rm and a failed tar")
    assert causes(cluster, "failing") == [], cluster.logs("failing")

    # The controls: the same rm alone restarts the program (after its grace), and so does a whole copy.
    cluster.exec("failing", "sh", "-c", "echo doomed > /app/data/doomed.txt")
    cluster.exec("failing", "rm", "-rf", "/app/data/doomed.txt")  # found on PATH: the wrapper's
    exactly(cluster, "failing", 2, "an rm alone")
    text = synced_greeting(cluster, "failing", "a whole copy")
    assert exactly(cluster, "failing", 3, "a whole copy")[-1].greeting == text
    assert causes(cluster, "failing") == ["a sync finished (rm)", BY_TAR], cluster.logs("failing")
    in_place(cluster, "failing", container_id)


def test_an_image_with_its_own_tar_still_restarts_on_sync(restricted, node_images):
    """busybox's tar, rm and test are on the image's PATH; restart-on-sync puts the wrapper's in
    front of them for what is exec'd into the container, so kubectl cp's tar is the wrapper's and
    restarts the program. What the wrapper's tar does not do itself it hands to busybox's: kubectl
    cp out of the pod (`tar cf -`) works, and restarts nothing. The program itself sees the image's
    PATH with the tools last, and no $RESTART_WRAPPER_SYNC_FILE."""
    cluster = restricted
    cluster.apply(example_pod("own-tar", node_images.app))
    first, container_id = started(cluster, "own-tar")
    assert_restart_on_sync(cluster.get("pod", "own-tar")["spec"], on=True)
    assert cluster.exec("own-tar", "which", "-a", "tar").split() == [f"{TOOLS}/tar", "/bin/tar"]

    text = synced_greeting(cluster, "own-tar", "into busybox")
    starts = exactly(cluster, "own-tar", 2, "kubectl cp into an image with its own tar")
    assert starts[-1].greeting == text and starts[-1].pid != first.pid
    assert causes(cluster, "own-tar") == [BY_TAR], cluster.logs("own-tar")

    with tempfile.TemporaryDirectory() as local:
        cluster.run("cp", f"{cluster.namespace}/own-tar:/app/data/greeting.txt", str(Path(local) / "out.txt"),
                    "-c", "app", namespaced=False)
        assert (Path(local) / "out.txt").read_text().strip() == text
    exactly(cluster, "own-tar", 2, "kubectl cp out of the pod: tar -c is no sync")

    environ = cluster.exec("own-tar", "cat", f"/proc/{starts[-1].pid}/environ").split("\0")
    program_path = next(v for v in environ if v.startswith("PATH="))[len("PATH="):]
    assert program_path == f"{RUNTIME_DEFAULT_PATH}:{TOOLS}", environ
    assert not any(v.startswith(f"{SYNC_ENV}=") for v in environ), environ
    in_place(cluster, "own-tar", container_id)


def test_the_programs_own_tar_and_rm_never_restart_it(cluster, node_images):
    """A program that runs tar and rm itself, every half second -- the image's by name, and the
    wrapper's by their full path: they are not a sync, and none of them restarts it."""
    script = ('echo "program started pid=$$ tar=$(which tar)"; n=0; '
              'while :; do echo x > /tmp/f && tar -C /tmp -cf /tmp/a.tar f && tar -xf /tmp/a.tar -C /tmp '
              f'&& rm -f /tmp/f && {TOOLS}/tar -x -f /tmp/a.tar -C /tmp && {TOOLS}/rm -f /tmp/f /tmp/a.tar '
              '&& n=$((n+1)) && echo $n > /tmp/rounds; sleep 0.5; done')
    cluster.apply(shell_pod("busy", node_images.busybox, script))
    wait_running(cluster, "busy")
    container_id = cluster.container_status("busy")["containerID"]
    assert_restart_on_sync(cluster.get("pod", "busy")["spec"], on=True)
    logs = cluster.wait(lambda: "program started" in (text := cluster.logs("busy")) and text, "the program's start")
    assert "tar=/bin/tar" in logs, logs  # its PATH has the image's first
    time.sleep(SETTLE)
    logs = cluster.logs("busy")
    assert logs.count("program started") == 1 and "restarting" not in logs, logs
    rounds = int(cluster.exec("busy", "cat", "/tmp/rounds"))
    assert rounds >= 4, f"the program ran its tar and rm {rounds} times in {SETTLE}s:\n{logs}"
    in_place(cluster, "busy", container_id)


# --- Tilt ------------------------------------------------------------------------------------

@contextlib.contextmanager
def tilt_up(cluster: Cluster, plane, registry, base: str, crane: Path, prepare=None):
    """`tilt up` on examples/tilt-crane/Tiltfile (a copy), after `prepare(tilt)` may change the copy."""
    tilt = Tilt(EXAMPLE, plane.kubeconfig, cluster.namespace, crane_example_settings(registry.host, base, crane,
                                                                                      plane.kubeconfig))
    try:
        if prepare:
            prepare(tilt)
        tilt.start()
        yield tilt
    finally:
        tilt.stop()


def tilt_pod(tilt: Tilt, cluster: Cluster) -> tuple[str, str]:
    """The Deployment's pod once its program has started and Tilt sees it running (Tilt live-updates
    only a container it has seen run its build): its name and container ID."""
    def running():
        pods = [p for p in json.loads(cluster.run("get", "pod", "-l", f"app={APP}", "-o", "json"))["items"]
                if not p["metadata"].get("deletionTimestamp")]
        ok = len(pods) == 1 and any("running" in s.get("state", {}) for s in pods[0]["status"].get("containerStatuses") or [])
        return pods[0]["metadata"]["name"] if ok else None

    name = tilt.wait(running, "Tilt to build, push and deploy the app", ignoring=(ScenarioFailure,))
    tilt.wait(lambda: cluster.starts(name), "the program's first start", ignoring=(ScenarioFailure,))
    tilt.wait(lambda: tilt.get("uiresource", APP)["status"].get("runtimeStatus") == "ok",
              "Tilt to see the resource running", ignoring=(RuntimeError,))
    assert_restart_on_sync(cluster.get("pod", name)["spec"], on=True)
    return name, cluster.container_status(name)["containerID"]


def tilt_wait(tilt: Tilt):
    return lambda condition, what, timeout: tilt.wait(condition, what, timeout=timeout, ignoring=(ScenarioFailure,))


def test_tilt_sync_alone_reruns_the_program_once_per_edit(restricted, node_plane, node_registry, node_images):
    """examples/tilt-crane as it is -- a live_update of one sync, no run step -- on an image with
    no tar at all: each edit re-runs the program once, from the finished sync."""
    cluster = restricted
    with tilt_up(cluster, node_plane, node_registry, "scratch", node_images.builder.crane) as tilt:
        assert "run(" not in tilt.tiltfile.read_text().split("live_update=", 1)[1], "the example has a run step"
        name, container_id = tilt_pod(tilt, cluster)
        greeting = tilt.example / "data" / "greeting.txt"
        for i in (1, 2, 3):
            text = f"edit {i} {uuid.uuid4().hex[:8]}"
            greeting.write_text(text + "\n")
            starts = exactly(cluster, name, 1 + i, f"Tilt's sync of edit {i}", wait=tilt_wait(tilt))
            assert starts[-1].greeting == text, cluster.logs(name)
        assert len({s.pid for s in starts}) == 4
        assert causes(cluster, name) == [BY_TAR] * 3, cluster.logs(name)
        in_place(cluster, name, container_id)
        output = tilt.output()
        assert output.count("Will copy 1 file(s) to container") == 3 and "[CMD" not in output, output


def test_a_tilt_edit_that_deletes_and_changes_files_restarts_once(restricted, node_plane, node_registry, node_images):
    """One edit that deletes a file and changes another: Tilt execs `rm -rf` and then `tar` into
    the container. The rm's restart waits for the tar, and the tar's is the one restart. Then an
    edit that only deletes: Tilt's `rm -rf`, then its `tar` of nothing, and again one restart."""
    cluster = restricted

    def with_an_extra_file(tilt: Tilt) -> None:
        (tilt.example / "data" / "extra.txt").write_text("deleted by the edit\n")

    with tilt_up(cluster, node_plane, node_registry, node_images.busybox, node_images.builder.crane,
                 prepare=with_an_extra_file) as tilt:
        name, container_id = tilt_pod(tilt, cluster)
        data = tilt.example / "data"
        assert sorted(cluster.exec(name, "ls", "-A", "/app/data").split()) == ["extra.txt", "greeting.txt"]

        text = f"changed as extra.txt goes {uuid.uuid4().hex[:8]}"
        (data / "extra.txt").unlink()  # both within Tilt's 200 ms debounce: one live update
        (data / "greeting.txt").write_text(text + "\n")
        starts = exactly(cluster, name, 2, "one edit that deletes and changes", wait=tilt_wait(tilt))
        assert starts[-1].greeting == text
        assert cluster.exec(name, "ls", "-A", "/app/data").split() == ["greeting.txt"]
        output = tilt.output()
        assert (output.count("Will delete 1 file(s) from container"),
                output.count("Will copy 1 file(s) to container")) == (1, 1), output
        assert causes(cluster, name) == [BY_TAR], cluster.logs(name)

        (data / "greeting.txt").unlink()
        starts = exactly(cluster, name, 3, "an edit that only deletes", wait=tilt_wait(tilt))
        assert starts[-1].greeting == NO_GREETING
        assert cluster.exec(name, "ls", "-A", "/app/data").split() == []
        assert causes(cluster, name) == [BY_TAR, BY_TAR], cluster.logs(name)
        assert len({s.pid for s in starts}) == 3
        in_place(cluster, name, container_id)


def test_a_tiltfile_that_keeps_its_trigger_step_restarts_once_per_edit(restricted, node_plane, node_registry,
                                                                        node_images):
    """A Tiltfile written before restart-on-sync: the sync, then
    run(['/restart-process/restart-wrapper', 'trigger']). The trigger comes right after the sync's
    tar, with nothing else run in the container in between: it writes nothing, and says so. One
    restart per edit, not two."""
    cluster = restricted

    def with_the_trigger_step(tilt: Tilt) -> None:
        text = tilt.tiltfile.read_text()
        sync = "        sync('data', '/app/data'),\n"
        assert text.count(sync) == 1, "examples/tilt-crane/Tiltfile changed"
        tilt.tiltfile.write_text(text.replace(sync, f"{sync}        {TRIGGER_STEP},\n"))

    with tilt_up(cluster, node_plane, node_registry, "scratch", node_images.builder.crane,
                 prepare=with_the_trigger_step) as tilt:
        name, container_id = tilt_pod(tilt, cluster)
        greeting = tilt.example / "data" / "greeting.txt"
        for i in (1, 2, 3):
            runs = tilt.output().count("[CMD 1/1] /restart-process/restart-wrapper trigger")
            text = f"edit {i} {uuid.uuid4().hex[:8]}"
            greeting.write_text(text + "\n")
            # The run step has run (it comes after the tar), and still one start.
            tilt.wait(lambda: tilt.output().count("[CMD 1/1] /restart-process/restart-wrapper trigger") > runs,
                      f"Tilt's run step for edit {i}")
            starts = exactly(cluster, name, 1 + i, f"Tilt's sync and trigger of edit {i}", wait=tilt_wait(tilt))
            assert starts[-1].greeting == text, cluster.logs(name)
        assert causes(cluster, name) == [BY_TAR] * 3, cluster.logs(name)
        assert len({s.pid for s in starts}) == 4
        in_place(cluster, name, container_id)
        # The trigger said why it wrote nothing (its stderr, in Tilt's log of the run step).
        output = tilt.output()
        assert output.count("[CMD 1/1] /restart-process/restart-wrapper trigger") == 3, output
        assert output.count("restarts the program already (restart-on-sync); nothing to do") == 3, output
