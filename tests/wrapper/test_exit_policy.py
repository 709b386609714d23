"""What happens when COMMAND exits: rerun (the default) with its back-off, restart, continue,
and the one line every end of COMMAND logs."""

import resource
import signal
import subprocess
import sys
import time

import pytest

from .harness import CHILD, ENV, Wrapper, cpu_ticks, ends, wait_until, without_emulator_line

# Headroom for a loaded 2-core machine on top of every interval the wrapper promises.
SLACK = 1.5


def test_rerun_is_the_default_and_doubles_its_back_off(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "exit", "3")
    try:
        (_, t1), (_, t2), (_, t3) = w.wait_starts(3)[:3]
        assert 1.0 <= t2 - t1 < 1.0 + SLACK
        assert 2.0 <= t3 - t2 < 2.0 + SLACK
        first, second = w.wait_ends(2)
        assert first.group(0) == (f"restart-wrapper: {sys.executable} exited with status 3 after "
                                  f"{first['seconds']}s; running it again in 1s (exit-policy rerun)")
        assert second["next"] == "running it again in 2s (exit-policy rerun)"
        assert float(first["seconds"]) < 1.0 + SLACK
    finally:
        w.stop()


def test_rerun_waits_without_using_cpu(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "exit", "3")
    try:
        wait_until(lambda: "running it again in 2s" in w.stderr(), what="the 2s back-off")
        before = cpu_ticks(w.process.pid)
        time.sleep(1.0)  # inside the 2s back-off
        assert cpu_ticks(w.process.pid) - before == 0  # one timer in poll(), no busy loop
        assert len(w.starts()) == 2
    finally:
        w.stop()


def test_a_trigger_during_the_back_off_starts_at_once_and_resets_it(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "exit", "3")
    try:
        wait_until(lambda: "running it again in 2s" in w.stderr(), what="the 2s back-off")
        written = time.monotonic()
        w.restart_file.write_text("go")
        _, started = w.wait_starts(3)[2]
        assert started - written < 1.0  # not after the 2s it was waiting out
        assert f"starting {sys.executable}: {w.restart_file} changed" in w.stderr()
        assert w.wait_ends(3)[2]["next"] == "running it again in 1s (exit-policy rerun)"  # reset, not 4s
    finally:
        w.stop()


def test_a_watched_change_during_the_back_off_starts_it_and_resets_it(wrapper, tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    w = Wrapper(wrapper, tmp_path, "exit", "3", options=[f"--watch={tree}", "--debounce=50ms"])
    try:
        wait_until(lambda: "running it again in 2s" in w.stderr(), what="the 2s back-off")
        written = time.monotonic()
        (tree / "main.py").write_text("fixed")
        _, started = w.wait_starts(3)[2]
        assert started - written < 1.0
        assert w.wait_ends(3)[2]["next"] == "running it again in 1s (exit-policy rerun)"
    finally:
        w.stop()


def test_rerun_runs_a_program_that_was_not_built_yet(wrapper, tmp_path):
    program = tmp_path / "server"
    marker = tmp_path / "ran"
    log = tmp_path / "stderr"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([str(wrapper), "run", f"--restart-file={tmp_path / 'r'}", "--", str(program)],
                                   stderr=stderr, env=ENV)
    try:
        wait_until(lambda: "running it again in 1s" in log.read_text(), what="the failed exec")
        first = ends(log.read_text())[0]
        assert first["status"] == "127" and first["command"] == str(program)
        program.write_text(f"#!/bin/sh\ntouch {marker}\nexec sleep 1000\n")
        program.chmod(0o755)
        wait_until(marker.exists, timeout=2 + 4 + SLACK, what="the program, once built, to run")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM


@pytest.mark.slow
def test_the_back_off_is_capped_at_30s_and_a_long_run_starts_it_over(wrapper, tmp_path):
    """Two wrappers side by side, so the whole thing takes ~35s rather than ~65s."""
    (tmp_path / "cap").mkdir()
    (tmp_path / "reset").mkdir()
    # Quick, quick (the next wait would be 4s), then a run of 31s, then quick again.
    with Wrapper(wrapper, tmp_path / "cap", "exit", "3") as capped, \
            Wrapper(wrapper, tmp_path / "reset", "runs", "0,0,31") as reset:
        waits = [m["next"] for m in capped.wait_ends(6, timeout=31 + 10 * SLACK)]
        assert waits == [f"running it again in {n}s (exit-policy rerun)" for n in (1, 2, 4, 8, 16, 30)]
        after_long = reset.wait_ends(4, timeout=3 + 31 + 10 * SLACK)
        assert [m["next"] for m in after_long] == [
            f"running it again in {n}s (exit-policy rerun)" for n in (1, 2, 1, 2)]
        assert 31.0 <= float(after_long[2]["seconds"]) < 31.0 + SLACK


# --- the line logged when COMMAND ends ---------------------------------------------------------


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize("sig, name", [(signal.SIGSEGV, "SEGV"), (signal.SIGUSR1, "USR1"), (40, None)])
@pytest.mark.emulator_limit(
    "it numbers a program's real-time signals two below the host's, so a child killed by host signal 40 is "
    "reported to the wrapper as killed by 38. Instead: test_emulation.py::test_the_arm64_abi_numbers_signals_like_amd64 "
    "(the status is read by number, the same code as the native builds')", when={"sig": 40})
def test_death_by_a_signal_is_named(wrapper, tmp_path, sig, name):
    log = tmp_path / "stderr"
    command = [sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"]
    with open(log, "wb") as stderr:
        process = subprocess.Popen([str(wrapper), "run", f"--restart-file={tmp_path / 'r'}", "--", *command],
                                   stderr=stderr, env=ENV, cwd=tmp_path, preexec_fn=no_core_dumps)
    try:
        end = wait_until(lambda: ends(log.read_text()), what="the end line")[0]
        named = f" ({name})" if name else ""
        assert end.group(0) == (f"restart-wrapper: {sys.executable} was killed by signal {int(sig)}{named} after "
                                f"{end['seconds']}s; running it again in 1s (exit-policy rerun)")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) in (128 + int(sig), 128 + signal.SIGTERM)


def test_restart_policy_line_and_how_long_it_ran(wrapper, tmp_path):
    result = subprocess.run([str(wrapper), "run", f"--restart-file={tmp_path / 'r'}", "--exit-policy=restart", "--",
                             *CHILD, "runs", str(tmp_path / "log"), "0.5"], capture_output=True, text=True, env=ENV,
                            timeout=20)
    assert result.returncode == 3
    (end,) = ends(result.stderr)
    assert end["status"] == "3" and end["next"] == "exiting with status 3 (exit-policy restart)"
    assert 0.5 <= float(end["seconds"]) < 0.5 + SLACK
    assert without_emulator_line(result.stderr, wrapper).splitlines() == [end.group(0)]  # the one line, nothing else


def test_continue_policy_line(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "exit", "0", options=["--exit-policy=continue"])
    try:
        (end,) = w.wait_ends(1)
        assert end["status"] == "0" and end["next"] == "waiting for a change to run it again (exit-policy continue)"
        time.sleep(1.5)  # no rerun under continue
        assert len(w.starts()) == 1 and len(w.ends()) == 1
    finally:
        assert w.stop() == 0


def test_every_end_is_one_line_saying_what_comes_next(wrapper, tmp_path):
    """A trigger, a child that ignores TERM, a shutdown: three ends, three lines."""
    with Wrapper(wrapper, tmp_path, "ignore-term", options=["--stop-timeout=300ms"]) as w:
        w.restart_file.write_text("go")  # TERM is ignored: SIGKILL after 300ms, then a new start
        w.wait_starts(2)
        w.signal(signal.SIGHUP)  # a shutdown; HUP is not ignored, so the child dies of it
        assert w.process.wait(timeout=10) == 128 + signal.SIGHUP
    lines = w.ends()
    assert [(m["signal"], m["name"], m["next"]) for m in lines] == [
        ("9", "KILL", f"starting it again now ({w.restart_file} changed)"),
        ("1", "HUP", "exiting with status 129 (shutting down)"),
    ]
    assert 0.3 <= float(lines[0]["seconds"])
    # Exactly one line per end: nothing else in the log has " after " in it.
    assert [l for l in w.stderr().splitlines() if " after " in l] == [m.group(0) for m in lines]


def test_a_graceful_shutdown_line(wrapper, tmp_path):
    with Wrapper(wrapper, tmp_path, "trap-term") as w:
        w.signal(signal.SIGTERM)
        assert w.process.wait(timeout=10) == 0
    assert [(m["status"], m["next"]) for m in w.ends()] == [("0", "exiting with status 0 (shutting down)")]


def test_a_program_ended_by_a_signal_from_outside_is_not_run_again(wrapper, tmp_path):
    """Someone stopping the container with a signal the wrapper does not know as its stop signal
    (httpd's WINCH from an image whose config the webhook could not read): the program exits on
    it, and running it again would only make the kubelet wait out the grace period."""
    with Wrapper(wrapper, tmp_path, "exit-on", str(int(signal.SIGUSR2)), "0") as w:
        w.signal(signal.SIGUSR2)
        assert w.process.wait(timeout=10) == 0
        assert len(w.starts()) == 1
        assert w.wait_ends(1)[0]["next"] == "exiting with status 0 (it ended after signal 12 (USR2) was passed on to it)"


def test_a_signal_the_program_survives_does_not_change_what_a_later_exit_means(wrapper, tmp_path):
    """The rule looks at the stop timeout after the signal only: a program that shrugged off a
    WINCH (a terminal resized) and crashed later is run again."""
    with Wrapper(wrapper, tmp_path, "runs", "1.5", options=["--stop-timeout=500ms"]) as w:
        w.signal(signal.SIGWINCH)  # ignored by the program (default action), forwarded all the same
        w.wait_starts(2, timeout=10)
        assert w.wait_ends(1)[0]["next"] == "running it again in 1s (exit-policy rerun)"
