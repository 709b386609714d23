"""The annotation contract: does a pod opt in, which containers, with which settings.

Pure: a pod's annotations go in, a `Contract` (or a list of problems) comes out.
Every problem is a short sentence naming the annotation and what is expected, so
that the admission warning tells the user exactly what to fix.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from .names import STATUS

DEFAULT_PREFIX = "restart-process.dev"

ENABLED = "enabled"
CONTAINERS = "containers"
IMAGES = "images"
OPT_IN_KEYS = (ENABLED, CONTAINERS, IMAGES)

ENTRYPOINT = "entrypoint"
RESTART_FILE = "restart-file"
WATCH = "watch"
EXIT_POLICY = "exit-policy"
STOP_SIGNAL = "stop-signal"
STOP_TIMEOUT = "stop-timeout"
DEBOUNCE = "debounce"
SETTING_KEYS = (ENTRYPOINT, RESTART_FILE, WATCH, EXIT_POLICY, STOP_SIGNAL, STOP_TIMEOUT, DEBOUNCE)

EXIT_POLICIES = ("restart", "continue")
# The names the wrapper understands; numbers 1..64 are accepted too.
SIGNAL_NAMES = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "KILL")
_DURATION = re.compile(r"^[0-9]{1,9}(ms|s|m)$")
_CONTAINER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class InvalidValue(ValueError):
    """A value that does not match what its annotation expects; the message says what is."""


@dataclass(frozen=True)
class ContainerSettings:
    """How one container is wrapped. `None` means: not given, the wrapper's default applies."""

    entrypoint: tuple[str, ...] | None = None
    restart_file: str | None = None
    watch: tuple[str, ...] = ()
    exit_policy: str | None = None
    stop_signal: str | None = None
    stop_timeout: str | None = None
    debounce: str | None = None

    def wrapper_options(self) -> list[str]:
        """The `run` options, one `--name=value` token each, only for settings that were given."""
        options = []
        if self.restart_file is not None:
            options.append(f"--restart-file={self.restart_file}")
        options.extend(f"--watch={path}" for path in self.watch)
        for name, value in (
            ("exit-policy", self.exit_policy),
            ("stop-signal", self.stop_signal),
            ("stop-timeout", self.stop_timeout),
            ("debounce", self.debounce),
        ):
            if value is not None:
                options.append(f"--{name}={value}")
        return options


@dataclass(frozen=True)
class Contract:
    """What a pod's annotations ask for, already validated."""

    opted_in: bool
    disabled: bool
    already_injected: bool
    every_container: bool
    container_names: tuple[str, ...]
    image_patterns: tuple[str, ...]
    # ContainerSettings field -> parsed value, for the whole pod and per container name
    pod_settings: dict[str, object] = field(default_factory=dict)
    container_settings: dict[str, dict[str, object]] = field(default_factory=dict)

    def settings_for(self, container: str) -> ContainerSettings:
        """Per-container values over pod-wide ones."""
        return ContainerSettings(**{**self.pod_settings, **self.container_settings.get(container, {})})


def read_contract(annotations: dict, prefix: str = DEFAULT_PREFIX) -> tuple[Contract, list[str]]:
    """Read our annotations. Returns the contract and the problems found (empty when valid).

    Problems are only collected for pods that opted in and are not disabled: a stray
    per-container setting on a pod that never opted in is none of our business.
    """
    ours: dict[str, str] = {}
    not_strings: list[str] = []
    for key, value in annotations.items():
        if not isinstance(key, str) or not key.startswith(prefix + "/"):
            continue
        if isinstance(value, str):
            ours[key[len(prefix) + 1 :]] = value
        else:
            not_strings.append(key)

    enabled = ours.get(ENABLED)
    # A key with a non-string value (YAML's unquoted true) still shows the intent to opt in.
    given = set(ours) | {key[len(prefix) + 1 :] for key in not_strings}
    opted_in = any(key in given for key in OPT_IN_KEYS)
    problems = [f"{key}: the value must be a string (quote it in YAML)" for key in not_strings]
    contract = Contract(
        opted_in=opted_in,
        disabled=enabled == "false",
        already_injected=STATUS in ours,
        every_container=False,
        container_names=(),
        image_patterns=(),
    )
    if not opted_in or contract.disabled or contract.already_injected:
        return contract, []

    def name(key: str) -> str:
        return f"{prefix}/{key}"

    if enabled not in (None, "true"):
        problems.append(f'{name(ENABLED)}: expected "true" or "false", got {_show(enabled)}')

    container_names: tuple[str, ...] = ()
    if CONTAINERS in ours:
        container_names = _split_list(ours[CONTAINERS])
        bad = [n for n in container_names if not _CONTAINER_NAME.match(n)]
        if not container_names or bad:
            problems.append(f"{name(CONTAINERS)}: expected comma-separated container names, got {_show(ours[CONTAINERS])}")

    image_patterns: tuple[str, ...] = ()
    if IMAGES in ours:
        image_patterns = _split_list(ours[IMAGES])
        bad = [p for p in image_patterns if any(c.isspace() for c in p)]
        if not image_patterns or bad:
            problems.append(f"{name(IMAGES)}: expected comma-separated image names, got {_show(ours[IMAGES])}")

    pod_settings: dict[str, object] = {}
    container_settings: dict[str, dict[str, object]] = {}
    for key, value in ours.items():
        if key in OPT_IN_KEYS:
            continue
        base, _, container = key.partition(".")
        if base not in SETTING_KEYS:
            problems.append(f"{name(key)}: unknown annotation; settings are {', '.join(SETTING_KEYS)}")
            continue
        try:
            parsed = _PARSERS[base](value)
        except InvalidValue as error:
            problems.append(f"{name(key)}: {error}, got {_show(value)}")
            continue
        if container:
            container_settings.setdefault(container, {})[_field(base)] = parsed
        else:
            pod_settings[_field(base)] = parsed

    return (
        Contract(
            opted_in=True,
            disabled=False,
            already_injected=False,
            every_container=not container_names and not image_patterns,
            container_names=container_names,
            image_patterns=image_patterns,
            pod_settings=pod_settings,
            container_settings=container_settings,
        ),
        problems,
    )


def status_value(original: dict[str, dict]) -> str:
    """The `injected` annotation: each wrapped container's original command and args, compact JSON."""
    return json.dumps({"containers": original}, separators=(",", ":"), sort_keys=True)


# --- value parsers: each returns the normalised value or raises InvalidValue -------------


def parse_entrypoint(text: str) -> tuple[str, ...]:
    """A JSON array of strings, or a string split by POSIX shell-word rules (no shell runs it)."""
    if text.lstrip().startswith("{"):  # a JSON object is a mistake, not a program named "{"
        raise InvalidValue("expected a JSON array of strings")
    if text.lstrip().startswith("["):
        try:
            words = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidValue("expected a JSON array of strings") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise InvalidValue("expected a JSON array of strings")
    else:
        try:
            words = shlex.split(text, posix=True)
        except ValueError as error:
            raise InvalidValue(f"cannot split into words ({error})") from None
    if not words or not words[0]:
        raise InvalidValue("expected a non-empty command")
    return tuple(words)


def parse_path(text: str) -> str:
    if not text.startswith("/") or "\0" in text or "\n" in text:
        raise InvalidValue("expected an absolute path")
    return text


def parse_paths(text: str) -> tuple[str, ...]:
    paths = tuple(p.strip() for p in text.split(","))
    if not all(paths):
        raise InvalidValue("expected comma-separated absolute paths")
    for path in paths:
        if not path.startswith("/"):
            raise InvalidValue("expected comma-separated absolute paths")
        parse_path(path)
    return paths


def parse_exit_policy(text: str) -> str:
    if text not in EXIT_POLICIES:
        raise InvalidValue('expected "restart" or "continue"')
    return text


def parse_signal(text: str) -> str:
    upper = text.upper()
    name = upper[3:] if upper.startswith("SIG") else upper
    if name in SIGNAL_NAMES:
        return name
    if text.isdigit() and 1 <= int(text) <= 64:
        return str(int(text))
    raise InvalidValue(f"expected one of {', '.join(SIGNAL_NAMES)} or a number 1-64")


def parse_duration(text: str) -> str:
    if not _DURATION.match(text):
        raise InvalidValue("expected a duration with a unit, like 250ms, 5s or 1m")
    return text


_PARSERS = {
    ENTRYPOINT: parse_entrypoint,
    RESTART_FILE: parse_path,
    WATCH: parse_paths,
    EXIT_POLICY: parse_exit_policy,
    STOP_SIGNAL: parse_signal,
    STOP_TIMEOUT: parse_duration,
    DEBOUNCE: parse_duration,
}


def _field(key: str) -> str:
    return key.replace("-", "_")


def _split_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(","))
    return items if all(items) else ()


def _show(value: str, limit: int = 40) -> str:
    """Quote a user's value for a warning, cut short so the warning stays readable."""
    return json.dumps(value if len(value) <= limit else value[: limit - 1] + "…", ensure_ascii=False)
