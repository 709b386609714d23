"""The seam between the webhook and the wrapper: every value the webhook admits without a warning,
the built wrapper accepts, and every value the webhook refuses, the wrapper refuses too.

A pod admitted as fine whose container then fails to start (the wrapper exits 2 on a usage
error) is the worst outcome of a typo; so both sides run the same values here: the webhook's
parser from webhook/contract.py, and the real `restart-wrapper run --OPTION=VALUE -- true`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.golden import expected_output, inputs
from tests.support.paths import BUILD
from tests.support.waiting import wait_until
from webhook.manifests import find_pods
from webhook.names import WRAPPER_PATH, sync_file, trigger_file
from webhook.contract import (
    SIGNALS,
    InvalidValue,
    parse_duration,
    parse_exit_policy,
    parse_path,
    parse_signal,
)

WRAPPER = BUILD / "restart-wrapper"
PARSERS = {
    "debounce": parse_duration,
    "stop-timeout": parse_duration,
    "stop-signal": parse_signal,
    "exit-policy": parse_exit_policy,
    "restart-file": parse_path,
    "watch": parse_path,
    "env-file": parse_path,
}


def webhook_admits(option: str, value: str) -> bool:
    try:
        PARSERS[option](value)
    except InvalidValue:
        return False
    return True


def wrapper_accepts(option: str, value: str) -> bool:
    policy = [] if option == "exit-policy" else ["--exit-policy=restart"]
    return wrapper_starts([f"--{option}={value}", *policy])


# What the wrapper logs when its program ends: proof that it accepted its options and ran `true`.
RAN_TRUE = re.compile(rb"^restart-wrapper: true exited with status 0 after [0-9.]+s; ", re.MULTILINE)


def wrapper_starts(options: list[str], timeout: float = 60.0) -> bool:
    """Start the real wrapper with these `run` options and `true` as the program.

    Refused: exit 2 with one line, at once. Accepted: it runs `true` and says so when `true` ends
    (then it exits 0 under exit-policy restart, or stays up under rerun and continue, and stops
    on SIGTERM). Anything else fails the test -- a wrapper that does neither within `timeout`, a
    crash, one that does not stop: a hang on bad input must not pass for agreement. (`timeout`
    is generous: `--watch=/` walks the whole filesystem before the program starts, seconds.)"""
    with tempfile.TemporaryDirectory(prefix="restart-process-seam-") as directory:
        log_path = Path(directory) / "stderr"
        with open(log_path, "ab") as log:  # appends; stderr() opens the file anew, moving no offset the child uses
            process = subprocess.Popen([str(WRAPPER), "run", *options, "--", "true"],
                                       stdout=subprocess.DEVNULL, stderr=log)

        def stderr() -> bytes:
            return log_path.read_bytes()

        try:
            wait_until(lambda: process.poll() is not None or RAN_TRUE.search(stderr()), timeout,
                       what=f"restart-wrapper run {options} -- true to refuse its options or run true")
        finally:
            if process.poll() is None:  # running: rerun and continue keep it up, a hang too
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise AssertionError(f"restart-wrapper run {options} did not stop on SIGTERM") from None
        output = stderr()
    if process.returncode == 2 and not RAN_TRUE.search(output):
        assert output.count(b"\n") == 1 and output.startswith(b"restart-wrapper: "), output
        return False
    assert RAN_TRUE.search(output), (options, process.returncode, output)
    # 0: true's status (restart), or shut down while waiting (rerun, continue); 143: shut down while true ran
    assert process.returncode in (0, 128 + signal.SIGTERM), (options, process.returncode, output)
    return True


DURATIONS = ["0s", "0ms", "1ms", "250ms", "5s", "1m", "00001s", "86400000ms", "86400s", "1440m",
             "86400001ms", "86401s", "1441m", "99999999999999999999999999m", "5", "1.5s", "-1s", "+1s", " 1s",
             "1s ", "1h", "1S", "", "ms", "s5", "１s", "1m30s"]
SIGNAL_VALUES = [*SIGNALS, *(f"SIG{name}" for name in SIGNALS), *(name.lower() for name in SIGNALS),
                 "SigTerm", "1", "9", "15", "31", "32", "34", "64", "007", "0", "65", "-1", "+5", " 5", "5 ", "",
                 "SIG", "SIGSIGTERM", "RTMIN", "RTMIN+1", "SIGRTMAX", "IOT", "POLL", "CLD", "ſigterm", "sıgint",
                 "TERMX", "١٥", "99999999999999999999"]
POLICIES = ["rerun", "restart", "continue", "RERUN", "Restart", "", "exit", "restart ", "continue\n"]
PATHS = ["/", "/a", "/tmp/.restart-proc", "/a b/c", "/é", "a", "", "./a", "~/a", "/a\nb", "/a\tb", "/a\x7fb",
         "/a\x1b[31m", "/" + "a" * 1023, "/" + "a" * 1024, "/" + "é" * 511, "/" + "é" * 512]

TABLE = ([(option, value) for option in ("debounce", "stop-timeout") for value in DURATIONS]
         + [("stop-signal", value) for value in SIGNAL_VALUES]
         + [("exit-policy", value) for value in POLICIES]
         + [(option, value) for option in ("restart-file", "watch", "env-file") for value in PATHS])


@pytest.mark.parametrize("option, value", TABLE, ids=lambda v: repr(v)[:40])
def test_webhook_and_wrapper_agree(option, value):
    assert webhook_admits(option, value) == wrapper_accepts(option, value)


def test_the_table_has_both_answers_for_every_option():
    """A table that only ever agrees on "yes" would prove little."""
    for option in PARSERS:
        answers = {webhook_admits(o, v) for o, v in TABLE if o == option}
        assert answers == {True, False}, option


# Characters that matter to either parser: digits (ASCII and not), units, signal letters,
# look-alikes that str.upper() folds to ASCII, signs, spaces, control characters.
ALPHABET = "0123456789msSMhTERMINTKILLQUITWINCHsigtermrunco+-. /é\u017f\u0131\u0661\uff11\n\t\x1b\x7f"
values = st.text(alphabet=ALPHABET, max_size=12)


def near(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid values, valid values with a character or two around them, and arbitrary text: random
    text alone is almost never a valid duration or policy, and would only test refusals."""
    noise = st.text(alphabet=ALPHABET, max_size=2)
    choices = [valid, valid, st.tuples(noise, valid, noise).map("".join), values]  # half of them valid
    return st.integers(0, len(choices) - 1).flatmap(lambda n: choices[n])


def cased(words) -> st.SearchStrategy[str]:
    return st.sampled_from(words).flatmap(lambda w: st.sampled_from([w, w.lower(), w.upper(), w.title()]))


# Up to 999 of any unit is within 24h; longer ones cross the limit (86400000ms, 86400s, 1440m) or not.
durations = near(st.from_regex(r"[0-9]{1,3}(ms|s|m)", fullmatch=True) | st.from_regex(r"[0-9]{4,9}(ms|s|m)", fullmatch=True))
good_paths = st.from_regex(r"/[a-z0-9/._ -]{0,20}", fullmatch=True)
with_control = st.tuples(good_paths, st.sampled_from(["\n", "\t", "\x1b", "\x7f"]), good_paths).map(lambda t: t[0] + t[1] + t[2])
paths = st.one_of(near(good_paths), with_control).map(lambda v: v if v.startswith("/") else "/" + v)
GENERATED = {
    "debounce": durations,
    "stop-timeout": durations,
    "stop-signal": near(cased([*SIGNALS, *(f"SIG{name}" for name in SIGNALS)]) | st.integers(0, 70).map(str)),
    "exit-policy": near(st.sampled_from(["rerun", "restart", "continue"]) | cased(["rerun", "restart", "continue"])),
    "restart-file": paths,
    # Under a directory that does not exist: `/`, `/.` and the like would have the wrapper walk the
    # whole filesystem before it starts `true` (seconds each); the table above has `/` once.
    "watch": paths.map(lambda v: "/nonexistent-restart-process-seam" + v),
    "env-file": paths,
}


@pytest.mark.parametrize("option", sorted(PARSERS))
def test_generated_values_get_the_same_answer_from_both(option):
    answers = []

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=GENERATED[option])
    def check(value):
        admitted = webhook_admits(option, value)
        assert admitted == wrapper_accepts(option, value)
        answers.append(admitted)

    check()
    # Both answers, several times: agreement on refusals alone would prove little (arbitrary text
    # alone gave no accepted duration or exit policy in 750 draws).
    assert answers.count(True) >= 5 and answers.count(False) >= 5, (answers.count(True), answers.count(False))


@pytest.mark.parametrize("name", ["a", "a" * 63, "my-app-2"])
def test_the_sync_file_the_webhook_passes_starts_the_real_wrapper(name):
    """restart-on-sync's --sync-file takes no value from an annotation: it is the container's file in
    the trigger volume, named after the container (a DNS label, 1 to 63 characters)."""
    assert wrapper_starts(["--exit-policy=restart", f"--restart-file={trigger_file(name)}",
                           f"--sync-file={sync_file(name)}"])


def test_every_wrapper_command_the_goldens_inject_starts_the_real_wrapper():
    """The whole command line, not option by option: every wrapped container of every golden
    output (image stop signals, operator-free defaults, several restart files) starts the wrapper."""
    commands = []
    for case in inputs():
        for document in yaml.safe_load_all(expected_output(case).read_text()):
            for pod in _pods(document):
                for container in [*pod["spec"].get("containers", []), *pod["spec"].get("initContainers", [])]:
                    command = container.get("command") or []
                    if command[:2] == [WRAPPER_PATH, "run"]:
                        commands.append((case.name, command[2:command.index("--")]))
    assert len(commands) >= 25
    # Side by side: most keep running under rerun or continue, and only time tells them apart.
    with ThreadPoolExecutor(max_workers=16) as pool:
        started = list(pool.map(lambda command: wrapper_starts(command[1]), commands))
    assert all(started), [command for command, ok in zip(commands, started) if not ok]


def _pods(document: dict):
    if document.get("kind") == "Pod":
        yield document
    for found in find_pods(document):
        if found.template:
            yield found.pod
