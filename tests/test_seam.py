"""The seam between the webhook and the wrapper: every value the webhook admits without a warning,
the built wrapper accepts, and every value the webhook refuses, the wrapper refuses too.

A pod admitted as fine whose container then fails to start (the wrapper exits 2 on a usage
error) is the worst outcome of a typo; so both sides run the same values here: the webhook's
parser from webhook/contract.py, and the real `restart-wrapper run --OPTION=VALUE -- true`.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.golden import expected_output, inputs
from tests.support.paths import BUILD
from webhook.manifests import find_pods
from webhook.names import WRAPPER_PATH
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


def wrapper_starts(options: list[str]) -> bool:
    """Start the real wrapper with these `run` options and `true` as the program; a usage error
    is exit 2 with one line, at once."""
    process = subprocess.Popen([str(WRAPPER), "run", *options, "--", "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # rerun and continue keep the wrapper up: it started, so it accepted
        process.kill()
        process.communicate()
        return True
    if process.returncode == 2:
        assert stderr.count(b"\n") == 1 and stderr.startswith(b"restart-wrapper: "), stderr
        return False
    assert process.returncode == 0, (options, process.returncode, stderr)
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(sorted(PARSERS)), value=values)
def test_generated_values_get_the_same_answer_from_both(option, value):
    if option in ("restart-file", "watch", "env-file"):
        value = "/" + value  # most generated paths would fail on the missing slash alone
    assert webhook_admits(option, value) == wrapper_accepts(option, value)


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
