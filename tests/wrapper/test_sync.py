"""The sync as the trigger (`run --sync-file`): tar -x and rm report a finished sync, the wrapper
restarts on it, and what our tools do not implement goes to the image's own.

The exec API runs tar and rm in the container's pid namespace with a parent outside it (the
runtime's shim), so their parent pid reads 0 there. The fold of a late `trigger` depends on that,
and on the pids the kernel hands out in that namespace, so those cases run the wrapper as pid 1
of a pid namespace of its own (`unshare`) and every tool through `nsenter`, taking pids as runc's
exec does (RUNC_INIT). They need root; this machine's suite runs as root.
"""

from __future__ import annotations

import io
import json
import os
import signal
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .harness import BUILDS, ENV, IS_ROOT, NO_OTHER_TOOLS, Wrapper, processes, wait_until

# Builds that run natively: under qemu-user every emulated process also starts a thread of the
# emulator's own, so the pids between a sync and a trigger are never the program's alone, and the
# fold (a pid-allocation question, not an architecture one) is checked on these.
NATIVE = [build for build in BUILDS if build in ("static", "asan")]
RM_GRACE = 1.0  # RW_SYNC_RM_GRACE_MS
FOLD_WINDOW = 2.0  # RW_SYNC_FOLD_MS
# By their full paths: the pods' PATH holds only the tools directory and what the test puts after it.
UNSHARE, NSENTER = shutil.which("unshare"), shutil.which("nsenter")
# An exec the way runc makes one: `runc init` is the first process of the exec in the container's
# pid namespace, starts Go threads there (5 pids more, after its own), and then becomes the
# command, with its first pid. Seen in real pods: each `kubectl exec` takes 6 or 7 pids.
RUNC_INIT = ("import os, sys, threading\n"
             "for _ in range(5):\n"
             "    thread = threading.Thread(target=lambda: None)\n"
             "    thread.start()\n"
             "    thread.join()\n"
             "os.execv(sys.argv[1], sys.argv[1:])\n")


def archive(files: dict[str, bytes]) -> bytes:
    """A tar stream as Tilt sends one (ustar, names relative to -C)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), time.time()
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class Pod:
    """A wrapped container, as far as the wrapper can tell: its tools directory (our binary and
    the tar, rm and test links, as `install` lays them down) first on PATH, the sync file in the
    env, and `run --sync-file`. `exec()` runs a tool as the exec API would: with that env."""

    def __init__(self, multicall: dict[str, Path], build: str, tmp: Path, *options: str, mode: str = "sleep",
                 extra: tuple[str, ...] = (), prefix: tuple[str, ...] = (), path_after: str = "/nonexistent",
                 path_first: str | None = None):
        self.tools = multicall[build]
        self.app = tmp / "app"
        self.app.mkdir()
        self.sync_file = tmp / "c.sync"
        path = f"{self.tools}:{path_after}" if path_first is None else f"{path_first}:{self.tools}:{path_after}"
        self.env = {**ENV, "PATH": path, "RESTART_WRAPPER_SYNC_FILE": str(self.sync_file),
                    "RESTART_WRAPPER_RESTART_FILE": str(tmp / "restart")}
        self.prefix: tuple[str, ...] = ()
        self.wrapper = Wrapper(self.tools / "restart-wrapper", tmp, mode, *extra, prefix=prefix, env=self.env,
                               options=(f"--sync-file={self.sync_file}", *options))

    def enter(self, pid: int) -> None:
        """Run every tool inside the pid (and mount) namespace of process `pid`, as runc's exec
        does: the process first takes a few pids more for threads that are gone when it becomes
        the tool (RUNC_INIT)."""
        self.prefix = (NSENTER, "-t", str(pid), "-p", "-m", "--", sys.executable, "-c", RUNC_INIT)

    def exec(self, tool: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        argv = [str(self.tools / "restart-wrapper"), "trigger"] if tool == "trigger" else [str(self.tools / tool)]
        return subprocess.run([*self.prefix, *argv, *args], input=stdin, capture_output=True, env=self.env, timeout=30)

    def sync(self, files: dict[str, bytes]) -> subprocess.CompletedProcess:
        """Tilt's sync: `tar -C / -x -f -` (here -C the app directory), the archive on stdin."""
        result = self.exec("tar", "-C", str(self.app), "-x", "-f", "-", stdin=archive(files))
        assert result.returncode == 0, result.stderr
        return result

    def report(self) -> list[str]:
        return self.sync_file.read_text().split()


def program_env(pod: Pod) -> dict:
    """The variables child.py's env mode wrote: its one "env {JSON}" line."""
    wait_until(lambda: pod.wrapper.lines("env"), what="the env line")
    line = next(l for l in pod.wrapper.log.read_text().splitlines() if l.startswith("env "))
    return json.loads(line.removeprefix("env "))


@pytest.fixture(params=list(BUILDS))
def build(request):
    return request.param


@pytest.fixture
def pod(multicall, build, tmp_path):
    running = Pod(multicall, build, tmp_path)
    yield running
    running.wrapper.stop()


# --- the tools' reports ---------------------------------------------------------------------


def test_each_tool_reports_how_its_sync_ended(pod):
    pod.sync({"a.txt": b"a"})
    event, tool, pid, ms = pod.report()
    assert (event, tool) == ("done", "tar") and int(pid) > 0 and abs(int(ms) / 1000 - time.monotonic()) < 5
    assert (pod.app / "a.txt").read_bytes() == b"a"
    assert pod.exec("rm", "-rf", str(pod.app / "a.txt")).returncode == 0
    assert pod.report()[:2] == ["done", "rm"]
    bad = pod.exec("tar", "-C", str(pod.app), "-x", "-f", "-", stdin=b"not an archive" * 100)
    assert bad.returncode == 2 and b"This does not look like a tar archive" in bad.stderr
    assert pod.report()[:2] == ["failed", "tar"]
    assert pod.exec("rm", str(pod.app / "missing")).returncode == 1
    assert pod.report()[:2] == ["failed", "rm"]
    # Temporary files renamed into place: nothing else is left beside the report.
    assert sorted(p.name for p in pod.sync_file.parent.iterdir() if p.name.startswith("c.sync")) == ["c.sync"]


def test_without_the_variable_nothing_is_reported(multicall, build, world_tmp):
    target = world_tmp / "t"
    target.mkdir()
    result = subprocess.run([str(multicall[build] / "tar"), "-x", "-f", "-", "-C", str(target)],
                            input=archive({"a": b"a"}), capture_output=True, env=NO_OTHER_TOOLS, timeout=30)
    assert result.returncode == 0 and result.stderr == b"" and (target / "a").read_bytes() == b"a"
    assert sorted(p.name for p in world_tmp.iterdir()) == ["t"]


def test_a_report_that_cannot_be_written_fails_the_sync_with_a_reason(multicall, build, world_tmp):
    """The files are there, but nothing restarts: Tilt must say so rather than report success."""
    target = world_tmp / "t"
    target.mkdir()
    env = {**NO_OTHER_TOOLS, "RESTART_WRAPPER_SYNC_FILE": str(world_tmp / "no-such-dir" / "c.sync")}
    result = subprocess.run([str(multicall[build] / "tar"), "-x", "-f", "-", "-C", str(target)],
                            input=archive({"a": b"a"}), capture_output=True, text=False, env=env, timeout=30)
    err = result.stderr.decode()
    assert result.returncode == 2 and (target / "a").read_bytes() == b"a", err
    assert "tar: cannot tell restart-wrapper of the sync: " in err and "No such file or directory" in err, err
    assert "tar: the files are extracted, but the program was not restarted" in err, err


# --- the supervisor -------------------------------------------------------------------------


def test_a_finished_tar_restarts_once_and_only_after_the_last_byte(pod):
    pod.sync({"a.txt": b"1", "b/c.txt": b"2" * 100_000})
    pod.wrapper.assert_starts_stay(2)
    assert "restarting " in pod.wrapper.stderr() and ": a sync finished (tar -x)" in pod.wrapper.stderr()
    second_start = pod.wrapper.starts()[1][1]
    assert int(pod.report()[3]) / 1000 <= second_start + 0.001  # the report came first, then the start
    pod.sync({"a.txt": b"3"})
    pod.wrapper.assert_starts_stay(3)


def test_rm_then_tar_is_one_restart_after_the_tar(pod):
    """Tilt's live update of an edit that deletes and changes files: `rm -rf`, then `tar`."""
    (pod.app / "old.txt").write_text("old")
    assert pod.exec("rm", "-rf", str(pod.app / "old.txt")).returncode == 0
    time.sleep(0.2)  # well beyond an exec's round trip: Tilt starts the tar tens of ms later
    pod.sync({"new.txt": b"new"})
    tar_done = int(pod.report()[3]) / 1000
    pod.wrapper.assert_starts_stay(2, settle=RM_GRACE + 0.5)
    assert pod.wrapper.starts()[1][1] >= tar_done
    assert pod.wrapper.stderr().count("restarting ") == 1


def test_rm_alone_restarts_after_its_grace(pod):
    """Skaffold deletes with `rm` alone: the restart comes once the grace has passed."""
    (pod.app / "old.txt").write_text("old")
    assert pod.exec("rm", "-f", str(pod.app / "old.txt")).returncode == 0
    rm_done = int(pod.report()[3]) / 1000
    pod.wrapper.assert_starts_stay(2, settle=RM_GRACE)
    waited = pod.wrapper.starts()[1][1] - rm_done
    assert RM_GRACE - 0.05 <= waited < RM_GRACE + 1.5, waited
    assert ": a sync finished (rm)" in pod.wrapper.stderr()


@pytest.mark.parametrize("after_rm", [False, True], ids=["tar-alone", "rm-then-tar"])
def test_a_failed_tar_does_not_restart(pod, after_rm):
    if after_rm:
        (pod.app / "old.txt").write_text("old")
        assert pod.exec("rm", "-rf", str(pod.app / "old.txt")).returncode == 0
    outside = archive({"../escaped.txt": b"x"})
    result = pod.exec("tar", "-C", str(pod.app), "-x", "-f", "-", stdin=outside)
    assert result.returncode == 2, result.stderr
    assert not (pod.app.parent / "escaped.txt").exists()
    pod.wrapper.assert_starts_stay(1, settle=RM_GRACE + 0.5)


def test_the_program_gets_the_path_it_would_have_without_restart_on_sync(multicall, build, tmp_path):
    """Our tools first on PATH is for what is exec'd into the container only: the program sees them
    last (where they are without restart-on-sync), and no sync file, so its own tar never restarts it."""
    pod = Pod(multicall, build, tmp_path, mode="env", extra=("PATH,RESTART_WRAPPER_",), path_after="/usr/bin:/bin")
    try:
        env = program_env(pod)
        assert env == {"PATH": f"/usr/bin:/bin:{pod.tools}",
                       "RESTART_WRAPPER_RESTART_FILE": pod.env["RESTART_WRAPPER_RESTART_FILE"]}
    finally:
        pod.wrapper.stop()


def test_a_path_whose_first_entry_is_not_ours_is_left_alone(multicall, build, tmp_path):
    """Our tools last (restart-on-sync off): PATH is the program's as it is."""
    pod = Pod(multicall, build, tmp_path, mode="env", extra=("PATH",), path_first="/usr/bin")
    try:
        assert program_env(pod) == {"PATH": f"/usr/bin:{pod.tools}:/nonexistent"}
    finally:
        pod.wrapper.stop()


def test_a_sync_under_a_watched_tree_is_one_restart(multicall, build, tmp_path):
    """--watch sees the files the tar writes; the sync's restart covers them."""
    pod = Pod(multicall, build, tmp_path, f"--watch={tmp_path / 'app'}", "--debounce=200ms")
    try:
        pod.sync({f"f{i}.txt": b"x" * 1000 for i in range(50)})
        pod.wrapper.assert_starts_stay(2, settle=1.0)
    finally:
        pod.wrapper.stop()


# --- a trigger after the sync: folded, or not -----------------------------------------------


@pytest.fixture(params=NATIVE)
def namespaced(request, multicall, tmp_path):
    """The wrapper as pid 1 of its own pid namespace, tools run into it as the exec API does."""
    if not IS_ROOT:
        pytest.skip("a pid namespace of the wrapper's own (unshare, nsenter) needs root")
    # --kill-child: should unshare die first (a failed test), the namespace dies with it.
    pod = Pod(multicall, request.param, tmp_path,
              prefix=(UNSHARE, "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"))
    # Our tools' sanitizer at exit (the leak check) starts a task of its own: a pid between a sync
    # and a trigger like any process that came and went. The supervisor keeps its leak check.
    pod.env = {**pod.env, "ASAN_OPTIONS": "detect_leaks=0"}
    wrapper = wait_until(lambda: next((pid for pid, info in processes().items()
                                       if info["ppid"] == pod.wrapper.process.pid), None), what="the wrapper")
    pod.enter(wrapper)
    yield pod
    # unshare passes no signal on: stop the wrapper itself (pid 1 there: all else in the
    # namespace goes with it), then unshare exits. (Wrapper.kill's process groups are pids of
    # the namespace, which mean other processes out here: not used.)
    os.kill(wrapper, signal.SIGTERM)
    pod.wrapper.stop()


def test_a_trigger_right_after_the_sync_is_folded_into_its_restart(namespaced):
    """A Tiltfile that kept `run([... 'trigger'])` after the sync: one restart per edit, not two."""
    namespaced.sync({"a.txt": b"1"})
    namespaced.wrapper.wait_starts(2)
    result = namespaced.exec("trigger")
    assert result.returncode == 0 and b"restarts the program already (restart-on-sync); nothing to do" in result.stderr
    namespaced.wrapper.assert_starts_stay(2, settle=0.5)
    namespaced.sync({"a.txt": b"2"})  # and the next edit is the same again
    assert namespaced.exec("trigger").returncode == 0
    namespaced.wrapper.assert_starts_stay(3, settle=0.5)


def test_a_trigger_after_another_exec_restarts_again(namespaced):
    """A run step between the sync and the trigger (a build, a copy) may have changed what the
    program runs: its exec is a pid that came and went, and the trigger restarts."""
    namespaced.sync({"a.txt": b"1"})
    namespaced.wrapper.wait_starts(2)
    assert namespaced.exec("test", "-d", "/").returncode == 0  # any exec at all
    result = namespaced.exec("trigger")
    assert result.returncode == 0 and result.stderr == b""
    namespaced.wrapper.assert_starts_stay(3)


def test_a_trigger_long_after_the_sync_restarts(namespaced):
    namespaced.sync({"a.txt": b"1"})
    namespaced.wrapper.wait_starts(2)
    time.sleep(FOLD_WINDOW + 0.2)
    assert namespaced.exec("trigger").stderr == b""
    namespaced.wrapper.assert_starts_stay(3)


def test_a_trigger_after_an_rm_restarts_at_once(namespaced):
    """An rm's restart waits out its grace; a trigger then is the signal the sync is over."""
    (namespaced.app / "old.txt").write_text("old")
    assert namespaced.exec("rm", "-f", str(namespaced.app / "old.txt")).returncode == 0
    rm_done = time.monotonic()
    assert namespaced.exec("trigger").stderr == b""
    namespaced.wrapper.assert_starts_stay(2, settle=RM_GRACE + 0.3)
    assert namespaced.wrapper.starts()[1][1] - rm_done < RM_GRACE


# --- what is not ours goes to the image's own tool --------------------------------------------


@pytest.fixture
def image_tools(tmp_path):
    """A directory of stand-ins for an image's own tar, rm and test: each writes its argv as JSON."""
    directory = tmp_path / "image-bin"
    directory.mkdir()
    for name in ("tar", "rm", "test"):
        tool = directory / name
        tool.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"
                        "sys.exit(7)\n")
        tool.chmod(0o755)
    return directory


@pytest.mark.parametrize("tool, argv", [
    ("tar", ["-c", "-f", "-", "x"]),  # kubectl cp out of the pod
    ("tar", ["czf", "-", "x"]),        # old style, gzip
    ("tar", ["-x", "-z", "-f", "a.tgz"]),
    ("tar", ["-t", "-v", "-f", "-"]),
    ("tar", ["--list", "--file=-"]),
    ("tar", ["-x", "-f", "-", "member"]),  # naming members
    ("rm", ["-i", "a"]),
    ("rm", ["--one-file-system", "-r", "a"]),
    ("test", ["-x", "/bin/sh"]),
    ("test", ["a", "=", "a"]),
])
def test_what_we_do_not_implement_goes_to_the_next_one_on_path(multicall, build, image_tools, tool, argv):
    env = {**NO_OTHER_TOOLS, "PATH": f"{multicall[build]}:{image_tools}", "RESTART_WRAPPER_SYNC_FILE": "/nonexistent/s"}
    result = subprocess.run([str(multicall[build] / tool), *argv], capture_output=True, text=True, env=env, timeout=30)
    assert (result.returncode, json.loads(result.stdout)) == (7, argv), result
    assert result.stderr == ""  # handed over before saying or reporting anything


def test_a_hand_off_reaches_the_real_tar(multicall, build, world_tmp):
    """kubectl cp out of a pod whose image has GNU tar, with ours first on PATH."""
    (world_tmp / "x").write_text("content")
    env = {**NO_OTHER_TOOLS, "PATH": f"{multicall[build]}:/usr/bin:/bin"}
    result = subprocess.run([str(multicall[build] / "tar"), "cf", "-", "x"], capture_output=True, cwd=world_tmp,
                            env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        assert tar.extractfile("x").read() == b"content"


def test_what_we_implement_stays_ours_with_another_tar_on_path(multicall, build, image_tools, world_tmp):
    env = {**NO_OTHER_TOOLS, "PATH": f"{multicall[build]}:{image_tools}"}
    result = subprocess.run([str(multicall[build] / "tar"), "-xmf", "-", "-C", str(world_tmp), "--no-same-owner"],
                            input=archive({"a": b"a"}), capture_output=True, env=env, timeout=30)
    assert result.returncode == 0 and result.stdout == b"" and (world_tmp / "a").read_bytes() == b"a", result


def test_two_copies_of_us_on_path_end_in_a_refusal_not_a_loop(multicall, build, tmp_path):
    """Each hand-off goes further along PATH: a second copy of us (another inode) hands to what is
    after it, here nothing, and says what it says in an image with no tar."""
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(multicall[build] / "restart-wrapper", copy / "restart-wrapper")
    (copy / "restart-wrapper").chmod(0o755)
    (copy / "tar").symlink_to("restart-wrapper")
    env = {**NO_OTHER_TOOLS, "PATH": f"{multicall[build]}:{copy}"}
    result = subprocess.run([str(multicall[build] / "tar"), "-c", "x"], capture_output=True, text=True, env=env,
                            timeout=30)
    assert result.returncode == 2 and result.stderr == "tar: -c is not supported by restart-wrapper\n", result
