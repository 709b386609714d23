"""Signals and reaping: the wrapper as a correct init (PID 1) and as a child subreaper."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.processes import read_line
from .harness import ENV, Wrapper, alive, ends, processes, wait_until

# Fault signals stay unblocked (a crash must crash, not hang), so they are not forwarded;
# SIGKILL/SIGSTOP cannot be caught; SIGCHLD is the wrapper's own business.
NOT_FORWARDED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE,
                 signal.SIGILL, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS}
SHUTDOWN = [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP]
FORWARDED = [s for s in range(1, 32) if s not in NOT_FORWARDED and s not in SHUTDOWN]
REALTIME = [signal.SIGRTMIN + 1, signal.SIGRTMAX - 1]
# Why the real-time signals cannot be checked under qemu-user, and what checks them instead.
QEMU_REALTIME = ("it keeps host real-time signals for itself: host signals 35 and 36 (SIGRTMIN+1, +2) kill the "
                 "emulator instead of reaching the program, and the program's real-time signals are numbered two below "
                 "the host's. Instead: test_emulation.py::test_the_arm64_abi_numbers_signals_like_amd64 (forwarding "
                 "is by number, the same code as the native builds')")


def assert_forwarded(wrapper, tmp_path, signals):
    w = Wrapper(wrapper, tmp_path, "signals")
    try:
        assert read_line(w.process.stdout) == b"ready\n"
        for sig in signals:
            w.signal(sig)
            assert read_line(w.process.stdout) == f"{int(sig)}\n".encode(), f"signal {sig}"
        assert len(w.starts()) == 1  # forwarding never restarts
    finally:
        w.stop()


def test_every_catchable_signal_is_forwarded(wrapper, tmp_path):
    assert_forwarded(wrapper, tmp_path, FORWARDED)


@pytest.mark.emulator_limit(QEMU_REALTIME)
def test_real_time_signals_are_forwarded(wrapper, tmp_path):
    assert_forwarded(wrapper, tmp_path, REALTIME)


@pytest.mark.parametrize("sig", SHUTDOWN)
def test_shutdown_signals_are_forwarded_then_the_wrapper_exits(wrapper, tmp_path, sig):
    w = Wrapper(wrapper, tmp_path, "signals", options=["--stop-timeout=1s"])
    assert read_line(w.process.stdout) == b"ready\n"
    w.signal(sig)
    assert read_line(w.process.stdout) == f"{int(sig)}\n".encode()
    # The child handled it and lives on; after the stop timeout it is killed and we exit 128+9.
    assert w.stop(timeout=15) == 128 + signal.SIGKILL
    assert "did not stop within" in w.stderr()


def test_shutdown_waits_for_a_graceful_child(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "trap-term", "0.3")
    started = time.monotonic()
    w.signal(signal.SIGTERM)
    assert w.process.wait(timeout=10) == 0  # the child's own clean exit status
    assert 0.25 < time.monotonic() - started < 3
    assert w.lines("term") and "SIGKILL" not in w.stderr()
    w.stop()


def test_a_pipeline_of_grandchildren_dies_with_the_group(wrapper, tmp_path):
    process = subprocess.Popen([str(wrapper), "run", "--", "/bin/sh", "-c", "sleep 1000 | sleep 1001 | cat"],
                               env=ENV)

    def pipeline():
        children = [p for p, i in processes().items() if i["ppid"] == process.pid]
        return children and [p for p, i in processes().items() if i["pgid"] == children[0]]

    # sh and its three pipeline members share the group the wrapper made for its child.
    members_of_group = wait_until(lambda: len(pipeline() or []) >= 4 and pipeline(), what="the pipeline")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 128 + signal.SIGTERM
    assert not [pid for pid in members_of_group if alive(pid)]


ORPHANS = textwrap.dedent("""
    # 100 orphans: each subshell exits at once, leaving its sleep to be re-parented.
    i=0; while [ $i -lt 100 ]; do (sleep 0.2 &); i=$((i+1)); done
    echo "parent $PPID"
    sleep 1.5
    # Zombies left anywhere in this PID namespace:
    n=0; for s in /proc/[0-9]*/stat; do read -r line < "$s" 2>/dev/null || continue
      case "${line##*) }" in Z*) n=$((n+1));; esac; done
    echo "zombies $n"
""")


def run_orphans_in_pid_namespace(init: list[str]) -> dict:
    result = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *init, "/bin/sh", "-c", ORPHANS],
                            capture_output=True, text=True, timeout=30, env=ENV)
    return dict(line.split() for line in result.stdout.splitlines()), result


def test_orphans_are_reaped_as_pid_1(wrapper):
    values, result = run_orphans_in_pid_namespace([str(wrapper), "run", "--exit-policy=restart", "--"])
    assert values["parent"] == "1", result.stderr  # the wrapper is PID 1
    assert values["zombies"] == "0"
    assert result.returncode == 0


def test_the_zombie_count_would_see_a_non_reaping_init():
    """Control: the same script under a PID 1 that never reaps orphans leaves zombies behind."""
    non_reaping = [sys.executable, "-c", "import subprocess,sys; sys.exit(subprocess.call(sys.argv[1:]))"]
    values, _ = run_orphans_in_pid_namespace(non_reaping)
    assert int(values["zombies"]) >= 50


@pytest.mark.emulator_limit(
    "prctl(PR_SET_CHILD_SUBREAPER) is not implemented (EINVAL), so the orphans go to this machine's init. Instead: "
    "test_orphans_are_reaped_as_pid_1 (the same reaping, as a container's PID 1, which needs no prctl) and "
    "test_emulation.py::test_the_emulated_build_asks_to_be_a_subreaper (the call it makes)")
def test_orphans_are_reaped_as_a_subreaper(wrapper, tmp_path):
    marker = tmp_path / "orphans-started"
    script = f"i=0; while [ $i -lt 100 ]; do (sleep 0.3 &); i=$((i+1)); done; touch {marker}; sleep 1000"
    process = subprocess.Popen([str(wrapper), "run", "--", "/bin/sh", "-c", script],
                               env=ENV)
    try:
        wait_until(marker.exists, what="orphans")
        adopted = [p for p, i in processes().items() if i["ppid"] == process.pid]
        assert len(adopted) >= 50  # the orphans came to us, not to the machine's init
        time.sleep(1.0)  # they have all exited by now
        zombies = [p for p, i in processes().items() if i["ppid"] == process.pid and i["state"] == "Z"]
        assert zombies == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_sigchld_and_sigurg_sent_to_the_wrapper_do_not_break_restarts(wrapper, tmp_path):
    """Tilt's wrapper forwarded SIGCHLD and entr stopped restarting (tilt-extensions#626)."""
    w = Wrapper(wrapper, tmp_path)
    try:
        for _ in range(5):
            w.signal(signal.SIGCHLD)
            w.signal(signal.SIGURG)
        w.restart_file.write_text("go")
        w.assert_starts_stay(2)
    finally:
        w.stop()


def test_stdin_and_working_directory_pass_through(wrapper, tmp_path):
    result = subprocess.run([str(wrapper), "run", "--exit-policy=restart", "--", "/bin/sh", "-c", "pwd; cat"],
                            input="piped\n",
                            capture_output=True, text=True, cwd=tmp_path, timeout=10,
                            env=ENV)
    assert result.stdout.splitlines() == [str(tmp_path), "piped"]


@pytest.mark.emulator_limit(
    "it installs a handler of its own for every signal and keeps a program's mask in its own bookkeeping, so a "
    "signal the wrapper inherited as ignored is at its default again in the program it execs (execve keeps only "
    "SIG_IGN), and so is the mask. Instead: test_emulation.py::test_the_emulated_build_passes_on_the_signals_it_inherited")
def test_the_child_gets_the_signal_mask_the_wrapper_inherited(wrapper, tmp_path):
    """Blocked and ignored signals as inherited, not the wrapper's own all-blocked mask (tini's sigconf test)."""
    script = "grep -E '^Sig(Blk|Ign):' /proc/self/status"
    inherited = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True).stdout
    wrapped = subprocess.run([str(wrapper), "run", "--exit-policy=restart", "--", "/bin/sh", "-c", script],
                             capture_output=True, text=True, env=ENV).stdout
    assert wrapped == inherited


# --- the --stop-signal is a shutdown signal too (the image's STOPSIGNAL, sent by the kubelet) -----


def test_the_stop_signal_shuts_down_and_a_rerun_never_follows(wrapper, tmp_path):
    """httpd's STOPSIGNAL is SIGWINCH: the kubelet sends it to the wrapper, which must leave."""
    with Wrapper(wrapper, tmp_path, "exit-on", str(int(signal.SIGWINCH)), "0", options=["--stop-signal=WINCH"]) as w:
        w.signal(signal.SIGWINCH)
        assert w.process.wait(timeout=10) == 0  # the child's own clean exit
        assert w.lines("got") == [["got", str(int(signal.SIGWINCH))]]  # forwarded, once
        assert len(w.starts()) == 1  # rerun is the default, and a shutdown is not an exit to rerun
        assert [m["next"] for m in ends(w.stderr())] == ["exiting with status 0 (shutting down)"]


def test_a_child_ignoring_the_stop_signal_is_killed_at_the_stop_timeout(wrapper, tmp_path):
    with Wrapper(wrapper, tmp_path, "ignore", str(int(signal.SIGWINCH)),
                 options=["--stop-signal=sigwinch", "--stop-timeout=500ms"]) as w:
        began = time.monotonic()
        w.signal(signal.SIGWINCH)
        assert w.process.wait(timeout=10) == 128 + signal.SIGKILL
        assert 0.5 <= time.monotonic() - began < 3
        assert "did not stop within 500ms; sending SIGKILL" in w.stderr()
        assert len(w.starts()) == 1


def test_the_stop_signal_restarts_too(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "exit-on", str(int(signal.SIGWINCH)), "0",
                options=["--stop-signal=28", "--stop-timeout=10s"])
    try:
        written = time.monotonic()
        w.restart_file.write_text("go")
        _, started = w.wait_starts(2)[-1]
        assert started - written < 3  # the child left at WINCH, long before the 10s timeout
        assert w.lines("got")[0] == ["got", str(int(signal.SIGWINCH))]
    finally:
        w.stop()


def test_winch_is_only_forwarded_when_it_is_not_the_stop_signal(wrapper, tmp_path):
    w = Wrapper(wrapper, tmp_path, "signals", options=["--stop-signal=QUIT"])
    try:
        assert read_line(w.process.stdout) == b"ready\n"
        w.signal(signal.SIGWINCH)
        assert read_line(w.process.stdout) == f"{int(signal.SIGWINCH)}\n".encode()
        time.sleep(0.3)
        assert w.process.poll() is None and "shutting down" not in w.stderr()
    finally:
        w.stop()


def test_a_shutdown_while_waiting_to_rerun_exits_at_once_with_the_last_status(wrapper, tmp_path):
    with Wrapper(wrapper, tmp_path, "exit", "3") as w:  # rerun by default: exits, waits 1s, exits, waits 2s
        wait_until(lambda: "running it again in 2s" in w.stderr(), what="the second back-off")
        began = time.monotonic()
        w.signal(signal.SIGTERM)
        assert w.process.wait(timeout=10) == 3
        assert time.monotonic() - began < 1  # not after the back-off
        assert len(w.starts()) == 2
        assert w.stderr().splitlines()[-1] == (
            f"restart-wrapper: shutting down on signal 15 (TERM) while {sys.executable} is not running; "
            "exiting with status 3")
