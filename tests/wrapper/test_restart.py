"""Restarts: what triggers one, exactly once, and what a restart leaves behind (nothing)."""

import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port

from .harness import CHILD, ENV, Wrapper, alive, cpu_ticks, processes, wait_until


@pytest.fixture
def w(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path)
    yield running
    running.stop()


def test_one_write_is_exactly_one_restart(w):
    w.restart_file.write_text("1")
    w.assert_starts_stay(2)
    first, second = w.starts()
    assert not alive(first[0])  # the old process is gone, not left running beside the new one
    assert "restarting" in w.stderr() and f"{w.restart_file} changed" in w.stderr()


def test_touch_alone_triggers(w):
    w.restart_file.write_text("")
    w.assert_starts_stay(2)
    os.utime(w.restart_file)  # mtime only, as `touch` on an existing file does
    w.assert_starts_stay(3)


def test_replacing_by_rename_triggers(w, tmp_path):
    w.restart_file.write_text("old")
    w.assert_starts_stay(2)
    replacement = tmp_path / ".restart.tmp"
    replacement.write_text("new")
    os.replace(replacement, w.restart_file)  # editors, kubectl cp
    w.assert_starts_stay(3)


def test_tar_extract_triggers_even_with_an_old_mtime(w, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "restart").write_text("from tar")
    os.utime(source / "restart", (1_000_000, 1_000_000))  # tar restores this old mtime
    archive = tmp_path / "sync.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source / "restart", arcname="restart")
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(tmp_path)], check=True)  # as Tilt's live_update does
    w.assert_starts_stay(2)


def test_delete_then_recreate_triggers_and_delete_alone_does_not_exit(w):
    w.restart_file.write_text("1")
    w.assert_starts_stay(2)
    w.restart_file.unlink()
    w.assert_starts_stay(2)
    assert w.process.poll() is None  # entr would have exited here
    w.restart_file.write_text("back")
    w.assert_starts_stay(3)


def test_file_absent_at_start_then_created(wrapper, tmp_path):
    nested = tmp_path / "not" / "yet"
    running = Wrapper(wrapper, tmp_path, restart_file=nested / "restart")
    try:
        running.assert_starts_stay(1)
        nested.mkdir(parents=True)  # the directory appears first: no restart yet
        running.assert_starts_stay(1)
        (nested / "restart").write_text("now")
        running.assert_starts_stay(2)
    finally:
        running.stop()


def test_restart_file_acts_at_once_even_with_a_long_debounce(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path, options=["--debounce=5s"])
    try:
        written = time.monotonic()
        running.restart_file.write_text("go")
        _, started = running.wait_starts(2)[-1]
        assert started - written < 1.0
    finally:
        running.stop()


def test_continuous_writes_never_lose_the_final_trigger(w):
    last = 0.0
    for i in range(40):
        w.restart_file.write_text(str(i))
        last = time.monotonic()
        time.sleep(0.01)
    # Some writes collapse into restarts in progress, but the last one is never lost:
    # a process started after the final write is running.
    wait_until(lambda: w.starts()[-1][1] >= last, what="a start after the last write")
    count = len(w.starts())
    time.sleep(0.5)
    assert len(w.starts()) == count and 2 <= count <= 41


def test_a_term_trapping_child_stops_cleanly(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path, "trap-term")
    try:
        running.restart_file.write_text("go")
        running.assert_starts_stay(2)
        assert len(running.lines("term")) == 1
        assert "SIGKILL" not in running.stderr()
    finally:
        running.stop()


def test_a_term_ignoring_child_is_killed_after_the_stop_timeout(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path, "ignore-term", options=["--stop-timeout=500ms"])
    try:
        written = time.monotonic()
        running.restart_file.write_text("go")
        _, started = running.wait_starts(2)[-1]
        assert 0.5 <= started - written < 1.5
        assert "did not stop within 500ms; sending SIGKILL" in running.stderr()
    finally:
        running.stop()


def test_stop_signal_option(wrapper, tmp_path):
    # A child that ignores TERM but dies of INT restarts without waiting for the timeout.
    running = Wrapper(wrapper, tmp_path, "ignore-term", options=["--stop-signal=INT", "--stop-timeout=10s"])
    try:
        written = time.monotonic()
        running.restart_file.write_text("go")
        _, started = running.wait_starts(2)[-1]
        assert started - written < 2
    finally:
        running.stop()


@pytest.mark.emulator_limit(
    "prctl(PR_SET_CHILD_SUBREAPER) is not implemented (EINVAL), so the escaped grandchild goes to this machine's "
    "init, out of the wrapper's sight. Instead: test_an_escaped_setsid_grandchild_does_not_survive_a_restart_as_pid_1 "
    "and test_emulation.py::test_the_emulated_build_asks_to_be_a_subreaper")
def test_an_escaped_setsid_grandchild_does_not_survive_a_restart(wrapper, tmp_path):
    port = free_port()
    running = Wrapper(wrapper, tmp_path, "setsid-port", str(port))
    try:
        first = wait_until(lambda: running.lines("bound"), what="the first grandchild")[0]
        running.restart_file.write_text("go")
        running.wait_starts(2)
        wait_until(lambda: len(running.lines("bound")) + len(running.lines("bind")) >= 2, what="second grandchild")
        assert len(running.lines("bound")) == 2, running.log.read_text()  # the port was free again
        assert not alive(int(first[1]))
    finally:
        running.stop()


def test_an_escaped_setsid_grandchild_does_not_survive_a_restart_as_pid_1(wrapper, tmp_path):
    """The same as PID 1 of a PID namespace (a pod's container), where the escaped grandchild comes
    back to the wrapper as to any init, with no prctl: the wrapper finds it in /proc (its parent
    is the wrapper) and kills it, so the port is free for the next run. Under qemu, which cannot
    make a process a subreaper, this is the emulated build's proof of the same."""
    port = free_port()
    log, restart = tmp_path / "child.log", tmp_path / "restart"

    def lines(prefix: str) -> list[str]:
        return [l for l in log.read_text().splitlines() if l.startswith(prefix)] if log.exists() else []

    # --kill-child: when unshare goes (KILL below: it ignores TERM), the wrapper is killed, and with
    # PID 1 the whole namespace, grandchild included.
    process = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", str(wrapper), "run",
                                f"--restart-file={restart}", "--", *CHILD, "setsid-port", str(log), str(port)],
                               env=ENV, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: lines("bound"), what="the first grandchild")
        restart.write_text("go")
        wait_until(lambda: len(lines("start")) >= 2, what="the second start")
        wait_until(lambda: len(lines("bound")) + len(lines("bind")) >= 2, what="the second grandchild")
        assert len(lines("bound")) == 2, log.read_text()  # the port was free again: the first one is gone
        (init,) = [pid for pid, info in processes().items() if info["ppid"] == process.pid]  # unshare's child
        nspid = next(l for l in Path(f"/proc/{init}/status").read_text().splitlines() if l.startswith("NSpid:"))
        assert nspid.split()[-1] == "1", nspid  # the wrapper is PID 1 in its namespace
    finally:
        process.kill()
        process.wait(timeout=15)
        process.stderr.close()


def test_external_term_during_a_restart_exits_promptly(wrapper, tmp_path):
    # The child takes 0.4s to stop; the TERM that arrives meanwhile must not start a new one.
    running = Wrapper(wrapper, tmp_path, "trap-term", "0.4")
    running.restart_file.write_text("go")
    wait_until(lambda: running.lines("term"), what="the restart to begin")
    began = time.monotonic()
    running.signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 0
    assert time.monotonic() - began < 2
    assert len(running.starts()) == 1
    running.stop()


def test_external_term_during_a_restart_keeps_the_first_deadline(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path, "ignore-term", options=["--stop-timeout=1s"])
    began = time.monotonic()
    running.restart_file.write_text("go")
    time.sleep(0.5)
    running.signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 128 + signal.SIGKILL
    assert time.monotonic() - began < 1.9  # one stop timeout, not two
    assert len(running.starts()) == 1
    running.stop()


def test_exit_policy_restart_exits_with_the_status(wrapper, tmp_path):
    running = subprocess.run([str(wrapper), "run", "--restart-file", str(tmp_path / "r"), "--exit-policy=restart",
                              "--", "/bin/sh", "-c", "exit 123"], timeout=10, env=ENV)
    assert running.returncode == 123  # tilt-extensions' test-docker-fail.sh expectation


def test_exit_policy_continue_stays_up_and_starts_again_on_a_trigger(wrapper, tmp_path):
    running = Wrapper(wrapper, tmp_path, "exit", "3", options=["--exit-policy=continue"])
    try:
        wait_until(lambda: "exited with status 3" in running.stderr(), what="the exit to be logged")
        assert running.process.poll() is None
        running.restart_file.write_text("go")
        running.assert_starts_stay(2)
        assert "starting" in running.stderr()
    finally:
        assert running.stop() == 0  # nothing was running when told to stop


def test_continue_survives_a_command_that_cannot_run(wrapper, tmp_path):
    log = tmp_path / "log"
    process = subprocess.Popen([str(wrapper), "run", f"--restart-file={tmp_path / 'r'}", "--exit-policy=continue",
                                "--", str(tmp_path / "not-built-yet")], stderr=open(log, "wb"), env=ENV)
    try:
        wait_until(lambda: "status 127" in log.read_text(), what="the failed exec")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_watch_tree_with_new_subdirectories(wrapper, tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    running = Wrapper(wrapper, tmp_path, options=[f"--watch={tree}", "--debounce=100ms"])
    try:
        (tree / "main.go").write_text("package main")
        running.assert_starts_stay(2)
        (tree / "pkg" / "deep").mkdir(parents=True)
        running.assert_starts_stay(3)
        (tree / "pkg" / "deep" / "util.go").write_text("package deep")  # inside a directory made after start
        running.assert_starts_stay(4)
        (tree / "pkg" / "deep" / "util.go").unlink()
        running.assert_starts_stay(5)
        assert f"{tree}/main.go changed" in running.stderr()
    finally:
        running.stop()


def test_a_burst_of_writes_under_watch_is_one_restart(wrapper, tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    running = Wrapper(wrapper, tmp_path, options=[f"--watch={tree}", "--debounce=300ms"])
    try:
        last = 0.0
        for i in range(50):  # a sync writing many files
            (tree / f"file{i}").write_text(str(i))
            last = time.monotonic()
        running.assert_starts_stay(2, settle=1.0)
        assert running.starts()[-1][1] - last >= 0.3  # after the quiet period, not before
    finally:
        running.stop()


def test_watch_tree_that_appears_later_and_a_single_file(wrapper, tmp_path):
    later = tmp_path / "later"
    config = tmp_path / "config.yaml"
    running = Wrapper(wrapper, tmp_path, options=[f"--watch={later}", f"--watch={config}", "--debounce=50ms"])
    try:
        later.mkdir()
        running.assert_starts_stay(2)
        (later / "x").write_text("x")
        running.assert_starts_stay(3)
        config.write_text("a: 1")
        running.assert_starts_stay(4)
        (tmp_path / "unrelated").write_text("no restart")
        running.assert_starts_stay(4)
    finally:
        running.stop()


def test_polling_sees_a_tar_restored_file_with_an_older_mtime(wrapper, tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    (tree / "bin").write_text("v1")
    os.utime(tree / "bin", (2_000_000, 2_000_000))
    running = Wrapper(wrapper, tmp_path, options=[f"--watch={tree}", "--poll=100ms", "--debounce=50ms"])
    try:
        running.assert_starts_stay(1)
        replacement = tmp_path / "bin.new"
        replacement.write_text("v2")
        os.utime(replacement, (1_000_000, 1_000_000))  # older than before: mtime alone would miss it
        os.replace(replacement, tree / "bin")
        running.assert_starts_stay(2)
        running.restart_file.write_text("go")  # the restart file is polled too
        running.assert_starts_stay(3)
    finally:
        running.stop()


def test_idle_wrapper_uses_no_cpu(w):
    ticks = lambda: sum(int(x) for x in open(f"/proc/{w.process.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    before = ticks()
    time.sleep(1.0)
    assert ticks() - before == 0  # no busy polling: not one clock tick in a second


def test_an_inotify_queue_overflow_counts_as_a_change(wrapper, tmp_path):
    """Events lost to a full queue must not lose a restart: overflow restarts at once."""
    tree = tmp_path / "app"
    tree.mkdir()
    running = Wrapper(wrapper, tmp_path, options=[f"--watch={tree}", "--debounce=10s"])
    try:
        limit = int(open("/proc/sys/fs/inotify/max_queued_events").read())
        running.signal(signal.SIGSTOP)  # the wrapper reads nothing while stopped: the queue fills
        for i in range(limit + 100):
            (tree / f"f{i}").touch()
        running.signal(signal.SIGCONT)
        running.wait_starts(2, timeout=5)  # well before the 10s debounce: the overflow acted at once
        assert "(inotify queue overflowed) changed" in running.stderr()
    finally:
        running.stop()


def test_every_restart_file_restarts_and_the_line_names_the_one_that_changed(wrapper, tmp_path):
    """The webhook passes /tmp/.restart-proc and /run/restart-process/<container>.restart; up to 8 work."""
    others = [tmp_path / f"pod{i}" / "app.restart" for i in range(7)]
    for path in others:
        path.parent.mkdir()
    running = Wrapper(wrapper, tmp_path, options=[f"--restart-file={p}" for p in others])
    try:
        for n, path in enumerate([others[6], running.restart_file, others[0]], start=2):
            path.write_text("go")
            running.assert_starts_stay(n)
        causes = [l.split(": ", 2)[2] for l in running.stderr().splitlines() if ": restarting " in l]
        assert causes == [f"{others[6]} changed", f"{running.restart_file} changed", f"{others[0]} changed"]
    finally:
        running.stop()


def test_a_restart_file_in_a_missing_directory_costs_nothing(wrapper, tmp_path):
    """No /tmp in the image: that file is anchored at an ancestor, quietly, while the other one works."""
    pod_file = tmp_path / "pod.restart"
    running = Wrapper(wrapper, tmp_path, restart_file=tmp_path / "no" / "tmp" / ".restart-proc",
                      options=[f"--restart-file={pod_file}"])
    try:
        before = cpu_ticks(running.process.pid)
        time.sleep(1.0)
        assert cpu_ticks(running.process.pid) - before == 0
        (tmp_path / "unrelated").write_text("x")  # the anchor's directory is busy: still no restart, no line
        pod_file.write_text("go")
        running.assert_starts_stay(2)
        assert running.stderr().splitlines()[0] == f"restart-wrapper: restarting {CHILD[0]}: {pod_file} changed"
    finally:
        running.stop()
