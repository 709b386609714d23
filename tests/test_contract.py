"""The annotation contract: value parsers and `read_contract`, table by table."""

import pytest

from webhook.contract import (
    InvalidValue,
    parse_duration,
    parse_entrypoint,
    parse_paths,
    parse_signal,
    read_contract,
    signal_from_runtime,
)


@pytest.mark.parametrize(
    "text, words",
    [
        ('["/bin/app", "--flag"]', ("/bin/app", "--flag")),
        ("/bin/app --name 'two words'", ("/bin/app", "--name", "two words")),
        ('/bin/app "$HOME"', ("/bin/app", "$HOME")),  # no shell: no expansion
    ],
)
def test_entrypoint_forms(text, words):
    assert parse_entrypoint(text) == words


@pytest.mark.parametrize("text", ["", "   ", "[]", '[1, 2]', '{"a": 1}', "[not json", "'open"])
def test_bad_entrypoints_are_rejected(text):
    with pytest.raises(InvalidValue):
        parse_entrypoint(text)


@pytest.mark.parametrize("good", ["0ms", "250ms", "5s", "1m", "120s"])
def test_durations(good):
    assert parse_duration(good) == good


@pytest.mark.parametrize("bad", ["5", "1.5s", "-1s", "1h", "s", "5 s", "1m30s", ""])
def test_bad_durations(bad):
    with pytest.raises(InvalidValue):
        parse_duration(bad)


@pytest.mark.parametrize("given, normal", [("TERM", "TERM"), ("SIGINT", "INT"), ("usr1", "USR1"), ("9", "9")])
def test_signals(given, normal):
    assert parse_signal(given) == normal


@pytest.mark.parametrize("bad", ["BOOM", "0", "65", "-1", "SIG"])
def test_bad_signals(bad):
    with pytest.raises(InvalidValue):
        parse_signal(bad)


def test_watch_paths_are_split_and_trimmed():
    assert parse_paths("/a, /b/c ,/d") == ("/a", "/b/c", "/d")
    with pytest.raises(InvalidValue):
        parse_paths("/a,,/b")


def test_custom_prefix():
    contract, problems = read_contract({"example.com/enabled": "true", "example.com/debounce": "1s"}, "example.com")
    assert contract.opted_in and contract.every_container and not problems
    assert contract.settings_for("app").debounce == "1s"
    other, _ = read_contract({"restart-process.dev/enabled": "true"}, "example.com")
    assert not other.opted_in


@pytest.mark.parametrize("given, normal", [
    ("SIGQUIT", "QUIT"), ("quit", "QUIT"), ("3", "3"), ("07", "7"), ("IOT", "ABRT"), ("cld", "CHLD"),
    ("SIGPOLL", "IO"), ("RTMIN", "34"), ("RTMIN+3", "37"), ("sigrtmax-1", "63"), ("RTMAX", "64"),
    ("0", None), ("65", None), ("RTMIN+31", None), ("SIGBOGUS", None), ("\u017figterm", None), ("", None),
])
def test_stop_signals_as_runtimes_spell_them(given, normal):
    """An image's StopSignal in moby's spelling, turned into one the wrapper takes (or None)."""
    assert signal_from_runtime(given) == normal
    if normal is not None:
        assert parse_signal(normal) == normal


def test_restart_on_sync_is_a_boolean_pod_wide_or_per_container():
    contract, problems = read_contract({"restart-process.dev/enabled": "true",
                                        "restart-process.dev/restart-on-sync": "false",
                                        "restart-process.dev/restart-on-sync.web": "true"})
    assert not problems
    assert contract.settings_for("app").restart_on_sync is False
    assert contract.settings_for("web").restart_on_sync is True
    unset, _ = read_contract({"restart-process.dev/enabled": "true"})
    assert unset.settings_for("app").restart_on_sync is None  # not given: the default applies


@pytest.mark.parametrize("bad", ["yes", "True", "1", "", "on"])
def test_restart_on_sync_takes_only_true_or_false(bad):
    _, problems = read_contract({"restart-process.dev/enabled": "true",
                                 "restart-process.dev/restart-on-sync.app": bad})
    assert len(problems) == 1
    assert problems[0].startswith('restart-process.dev/restart-on-sync.app: expected "true" or "false"'), problems
