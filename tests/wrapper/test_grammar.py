"""The value grammar the wrapper shares with the webhook, at and past every bound.

The webhook validates annotation values and passes them as --name=value: whatever one
accepts, the other must accept. Each table is the wrapper's side of that contract.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.processes import read_line
from .harness import ENV, Wrapper, wait_until

# --- durations ------------------------------------------------------------------------------

DURATIONS_OK = ["0ms", "0s", "0m", "1ms", "1s", "1m", "250ms", "5s", "00001s", "0" * 40 + "5s", "86400000ms",
                "86400s", "1440m", "086400s", "0001440m", "0" * 30 + "86400000ms"]
DURATIONS_BAD = ["", "5", "ms", "s", "m", "1h", "1d", "1.5s", "1,5s", ".5s", " 1s", "1s ", "\t1s", "1s\n", "+1s",
                 "-1s", "1 s", "1S", "1Ms", "1MS", "1M", "1us", "1µs", "1ns", "1e3ms", "0x10s", "1ss", "1msm", "1m1s",
                 "1s1", "１s", "86400001ms", "86401s", "1441m", "0086401s", "99999999999999999999999999999999s",
                 "18446744073709551617ms", "9223372036854775808ms", "4294967297ms"]
ZERO = {"0ms", "0s", "0m"}


def run_true(wrapper, *options, restart_file=None):
    """`run OPTIONS -- true`, exiting with true's status: 0 when the options parse, 2 when not."""
    argv = [os.fsencode(str(wrapper)), b"run", b"--exit-policy=restart"]
    if restart_file is not None:
        argv.append(b"--restart-file=" + os.fsencode(str(restart_file)))
    argv += [o if isinstance(o, bytes) else o.encode() for o in options] + [b"--", b"true"]
    return subprocess.run(argv, capture_output=True, env=ENV, timeout=20)


def assert_accepted(result):
    assert result.returncode == 0 and b"expected" not in result.stderr, result.stderr


def assert_refused(result, option: str, expected: str):
    lines = result.stderr.decode(errors="replace").splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and expected in lines[0] and f"--{option}" in lines[0], lines


@pytest.mark.parametrize("option", ["debounce", "stop-timeout", "poll"])
@pytest.mark.parametrize("value", DURATIONS_OK)
def test_durations_accepted(wrapper, tmp_path, option, value):
    result = run_true(wrapper, f"--{option}={value}", restart_file=tmp_path / "r")
    if option == "poll" and value.lstrip("0") in ("ms", "s", "m"):
        assert_refused(result, option, "expected a duration above 0")
    else:
        assert_accepted(result)


@pytest.mark.parametrize("option", ["debounce", "stop-timeout", "poll"])
@pytest.mark.parametrize("value", DURATIONS_BAD)
def test_durations_refused(wrapper, tmp_path, option, value):
    assert_refused(run_true(wrapper, f"--{option}={value}", restart_file=tmp_path / "r"), option,
                   "expected a duration")


def test_a_24h_stop_timeout_is_not_wrapped_around(wrapper, tmp_path):
    """The largest stop timeout accepted is the one used, not an overflowed small or negative one."""
    with Wrapper(wrapper, tmp_path, "ignore-term", options=["--stop-timeout=1440m"]) as w:
        w.restart_file.write_text("go")
        wait_until(lambda: "restarting" in w.stderr(), what="the restart to begin")
        time.sleep(0.5)
        w.kill()  # no 24h wait here: the point is that it did not SIGKILL early
    assert "SIGKILL" not in w.stderr() and len(w.starts()) == 1


# --- signals --------------------------------------------------------------------------------

# Linux numbering: the list is exactly signals 1 to 31 in order.
NAMES = ("HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN "
         "TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS").split()
NUMBER = {name: i + 1 for i, name in enumerate(NAMES)}
SIGNALS_OK = [form for name in NAMES for form in (name, "SIG" + name, name.lower(), "sig" + name.lower(),
                                                     "Sig" + name.capitalize())]
SIGNALS_OK += ["1", "9", "15", "31", "32", "34", "64", "01", "064", "0" * 30 + "9"]
SIGNALS_BAD = ["", "0", "00", "65", "100", "640", "-1", "+1", " 1", "1 ", "1.0", "0x1", "1e1", "1\n",
               "99999999999999999999", "4294967311", "IOT", "POLL", "CLD", "SIGIOT", "SIGPOLL", "SIGCLD", "RTMIN",
               "RTMAX", "RTMIN+1", "SIGRTMIN+1", "SIGRTMAX-1", "SIG", "sig", "SIGSIGTERM", "SIG15", "SIG 15", " TERM",
               "TERM ", "SIG_TERM", "SIG-TERM", "TERM\n", "TERMINATE", "TER", "EXIT", "ZERO", "LOST", "EMT", "INFO",
               "UNUSED", "SIGKILL9", "١", "ＴＥＲＭ", "TERM\x01"]


@pytest.mark.parametrize("value", SIGNALS_OK)
def test_signals_accepted(wrapper, tmp_path, value):
    assert_accepted(run_true(wrapper, f"--stop-signal={value}", restart_file=tmp_path / "r"))


@pytest.mark.parametrize("value", SIGNALS_BAD)
def test_signals_refused(wrapper, tmp_path, value):
    assert_refused(run_true(wrapper, f"--stop-signal={value}", restart_file=tmp_path / "r"), "stop-signal",
                   "expected a signal name like TERM or SIGQUIT, or a number 1-64")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("KILL", "STOP")])
def test_each_name_is_its_linux_signal(wrapper, tmp_path, name):
    """A restart sends the parsed signal; the child prints the number it got."""
    form = "sig" + name.lower()
    with Wrapper(wrapper, tmp_path, "signals", options=[f"--stop-signal={form}", "--stop-timeout=20s"]) as w:
        assert read_line(w.process.stdout) == b"ready\n"
        w.restart_file.write_text("go")
        assert read_line(w.process.stdout) == f"{NUMBER[name]}\n".encode()
        w.kill()  # the child handles every signal and would only go at the 20s timeout


def test_kill_and_stop_as_stop_signals(wrapper, tmp_path):
    (tmp_path / "kill").mkdir()
    (tmp_path / "stop").mkdir()
    with Wrapper(wrapper, tmp_path / "kill", "ignore-term", options=["--stop-signal=KILL", "--stop-timeout=3s"]) \
            as killed, Wrapper(wrapper, tmp_path / "stop", "ignore-term",
                               options=["--stop-signal=SIGSTOP", "--stop-timeout=500ms"]) as stopped:
        killed.restart_file.write_text("go")
        stopped.restart_file.write_text("go")
        # KILL ends the child at once, without waiting out the 3s (the stop at the end does, at TERM).
        assert killed.wait_ends(1, timeout=2)[0]["signal"] == "9" and "did not stop" not in killed.stderr()
        stopped.wait_starts(2)  # a stopped child is SIGKILLed at the stop timeout
        assert "did not stop within 500ms; sending SIGKILL" in stopped.stderr()


# --- paths ----------------------------------------------------------------------------------

PATHS_OK = [b"/a", "/tmp/é".encode(), b"/with space/x", b"/x\x80\xff", b"/a/../b", b"//double", b"/trailing/",
            "/\u00a0nbsp\u0085".encode(), b"/" + b"a" * 1023]
PATHS_BAD = [(b"", "an absolute path"), (b"a", "an absolute path"), (b"./a", "an absolute path"),
             (b"~/a", "an absolute path"), (b" /a", "an absolute path"),
             (b"/" + b"a" * 1024, "a path of at most 1024 bytes"),
             (b"/a\nb", "without control characters"), (b"/a\tb", "without control characters"),
             (b"/a\rb", "without control characters"), (b"/\x01", "without control characters"),
             (b"/\x1f", "without control characters"), (b"/a\x7f", "without control characters"),
             (b"/\x1b[31m", "without control characters"), (b"/" + b"a" * 1030 + b"\n", "control characters")]
PATH_OPTIONS = ["restart-file", "watch", "env-file"]


# "/" is valid for every path option; it is left out for --watch, which would walk the whole disk.
@pytest.mark.parametrize("option, value", [(o, v) for o in PATH_OPTIONS for v in PATHS_OK + [b"/"]
                                           if (o, v) != ("watch", b"/")], ids=repr)
def test_paths_accepted(wrapper, tmp_path, option, value):
    result = run_true(wrapper, f"--{option}=".encode() + value,
                      restart_file=None if option == "restart-file" else tmp_path / "r")
    assert_accepted(result)


@pytest.mark.parametrize("option", PATH_OPTIONS)
@pytest.mark.parametrize("value, expected", PATHS_BAD, ids=repr)
def test_paths_refused(wrapper, tmp_path, option, value, expected):
    result = run_true(wrapper, f"--{option}=".encode() + value,
                      restart_file=None if option == "restart-file" else tmp_path / "r")
    assert_refused(result, option, expected)


def path_of_length(base: Path, length: int) -> bytes:
    """An absolute path of exactly `length` bytes under base, whose directories exist."""
    prefix = os.fsencode(str(base)) + b"/"
    parts, remaining = [], length - len(prefix)
    while remaining > 200:
        parts.append(b"d" * 199)
        remaining -= 200
    path = prefix + b"/".join(parts + [b"f" * remaining])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert len(path) == length
    return path


def test_trigger_takes_a_path_of_exactly_1024_bytes(wrapper, tmp_path):
    longest = path_of_length(tmp_path, 1024)
    result = subprocess.run([wrapper, b"trigger", b"--restart-file=" + longest], capture_output=True, env=ENV,
                            timeout=20)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(longest)
    env = {**ENV, "RESTART_WRAPPER_RESTART_FILE": os.fsdecode(longest)}
    os.unlink(longest)
    assert subprocess.run([wrapper, "trigger"], env=env, timeout=20).returncode == 0
    assert os.path.exists(longest)


@pytest.mark.parametrize("value", PATHS_OK[:4], ids=repr)
def test_trigger_accepts_the_path_grammar(wrapper, tmp_path, value):
    target = os.fsencode(str(tmp_path)) + value
    os.makedirs(os.path.dirname(target), exist_ok=True)
    result = subprocess.run([wrapper, b"trigger", b"--restart-file=" + target], capture_output=True, env=ENV,
                            timeout=20)
    assert result.returncode == 0 and os.path.exists(target), result.stderr


def test_trigger_of_the_root_directory_is_valid_but_cannot_be_written(wrapper):
    result = subprocess.run([wrapper, "trigger", "--restart-file=/"], capture_output=True, text=True, env=ENV,
                            timeout=20)
    assert result.returncode == 1 and "cannot open /: Is a directory" in result.stderr


@pytest.mark.parametrize("value, expected", PATHS_BAD, ids=repr)
def test_trigger_refuses_what_run_refuses(wrapper, tmp_path, value, expected):
    result = subprocess.run([wrapper, b"trigger", b"--restart-file=" + value], capture_output=True, env=ENV,
                            timeout=20, cwd=tmp_path)
    assert_refused(result, "restart-file", expected)
    assert list(tmp_path.iterdir()) == []  # nothing was written, not even relative to the cwd


@pytest.mark.parametrize("value, expected", PATHS_BAD[1:], ids=repr)  # empty means "not set"
def test_trigger_refuses_the_same_paths_from_the_environment(wrapper, tmp_path, value, expected):
    result = subprocess.run([wrapper, "trigger"], capture_output=True, timeout=20, cwd=tmp_path,
                            env={**ENV, "RESTART_WRAPPER_RESTART_FILE": os.fsdecode(value)})
    lines = result.stderr.decode(errors="replace").splitlines()
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], lines
    assert "RESTART_WRAPPER_RESTART_FILE=" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_up_to_8_restart_files(wrapper, tmp_path):
    files = [f"--restart-file={tmp_path}/r{i}" for i in range(9)]
    assert_accepted(run_true(wrapper, *files[:8]))
    result = run_true(wrapper, *files)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "restart-wrapper: expected at most 8 --restart-file options (try: restart-wrapper help)"]


def test_a_control_character_in_a_refused_value_cannot_split_the_line(wrapper, tmp_path):
    result = run_true(wrapper, b"--watch=/a\nrestart-wrapper: forged line", restart_file=tmp_path / "r")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "restart-wrapper: expected a path without control characters: --watch=/a?restart-wrapper: forged line "
        "(try: restart-wrapper help)"]


# --- exit policy ----------------------------------------------------------------------------

POLICIES_BAD = ["", "Rerun", "RERUN", "Restart", "RESTART", "Continue", "rerun ", " rerun", "rerun\n", "stop",
                "always", "restart,continue", "re-run", "exit", "never"]


@pytest.mark.parametrize("value", POLICIES_BAD)
def test_exit_policies_refused(wrapper, tmp_path, value):
    result = subprocess.run([wrapper, "run", f"--restart-file={tmp_path}/r", f"--exit-policy={value}", "--", "true"],
                            capture_output=True, env=ENV, timeout=20)
    assert_refused(result, "exit-policy", "expected rerun, restart or continue")


@pytest.mark.parametrize("value", ["rerun", "restart", "continue"])
def test_exit_policies_accepted(wrapper, tmp_path, value):
    log = tmp_path / "stderr"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([wrapper, "run", f"--restart-file={tmp_path}/r", f"--exit-policy={value}", "--",
                                    "true"], stderr=stderr, env=ENV)
    try:
        wait_until(lambda: f"(exit-policy {value})" in log.read_text(), what="the policy to act")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
