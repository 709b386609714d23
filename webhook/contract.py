"""The annotation contract: does a pod opt in, which containers, with which settings.

Pure: a pod's annotations go in, a `Contract` (or a list of problems) comes out.
Every problem is a short sentence naming the annotation and what is expected, so
that the admission warning tells the user exactly what to fix.

The values the webhook hands to the wrapper (durations, signals, paths, policies) follow
exactly the grammar of `restart-wrapper run`'s parser (wrapper/cli.c): a value admitted here
without a warning starts the wrapper, and one refused here would not. tests/test_seam.py runs
both sides on the same values.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from .delivery import Delivery
from .names import DEFAULT_RESTART_FILE, STATUS

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
ENV_FILE = "env-file"
LIVENESS_PROBE = "liveness-probe"
SYNC_TOOLS = "sync-tools"
RESTART_ON_SYNC = "restart-on-sync"
SETTING_KEYS = (ENTRYPOINT, RESTART_FILE, WATCH, EXIT_POLICY, STOP_SIGNAL, STOP_TIMEOUT, DEBOUNCE, ENV_FILE,
                LIVENESS_PROBE, SYNC_TOOLS, RESTART_ON_SYNC)
# How the wrapper reaches the pod (`delivery`): pod-wide only, one choice for all its containers.
# A pod may choose because the webhook cannot see everything that refuses an image volume: the
# cluster-wide default Pod Security level (AdmissionConfiguration), policy engines (Kyverno,
# Gatekeeper) that restrict volume types. `init-container` is the way out.
DELIVERY = "delivery"
POD_KEYS = (DELIVERY,)
# What applies when a setting is not annotated. docs/annotations.md lists the same values, and
# tests/test_docs.py checks the two against each other. It also checks these values against the
# code that applies them: the wrapper's own defaults (wrapper/cli.c) and the server's
# (config.InjectorConfig). A pod or server setting can come first:
# - stop-signal: the container's lifecycle.stopSignal, then the image's STOPSIGNAL;
# - exit-policy, liveness-probe, delivery: the server's --default-exit-policy,
#   --default-liveness-probe and --delivery.
# None means nothing applies, or what applies comes from the pod (entrypoint: the container's
# command, else the image's).
SETTING_DEFAULTS: dict[str, str | None] = {
    ENTRYPOINT: None,
    RESTART_FILE: DEFAULT_RESTART_FILE,
    WATCH: None,
    EXIT_POLICY: "rerun",
    STOP_SIGNAL: "TERM",
    STOP_TIMEOUT: "5s",
    DEBOUNCE: "100ms",
    ENV_FILE: None,
    LIVENESS_PROBE: "keep",
    SYNC_TOOLS: "true",
    # On: opting a pod in already says "this is a dev pod", and with a plain sync (Tilt's sync
    # without a run step, kubectl cp) the program then restarts with nothing else to set up.
    RESTART_ON_SYNC: "true",
    DELIVERY: Delivery.AUTO.value,
}

# rerun: run the program again in place after a back-off (the wrapper's default);
# restart: exit, so the kubelet restarts the container; continue: wait for the next change.
EXIT_POLICIES = ("rerun", "restart", "continue")
# keep: leave a wrapped container's livenessProbe as it is (with a warning); remove: drop it;
# relax: keep it, but let it fail for RELAXED_PROBE_SECONDS before the kubelet acts.
LIVENESS_PROBE_POLICIES = ("keep", "remove", "relax")
RELAXED_PROBE_SECONDS = 300
# Linux's signal numbers (the same on x86-64 and arm64), by the names the wrapper accepts.
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10,
    "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19,
    "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "PWR": 30, "SYS": 31,
}
MAX_SIGNAL = 64
MAX_DURATION_MS = 24 * 60 * 60 * 1000
MAX_PATH_BYTES = 1024
_DURATION = re.compile(r"([0-9]+)(ms|s|m)", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000}
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
    env_file: str | None = None
    liveness_probe: str | None = None
    sync_tools: bool | None = None  # put tar, rm and test on the container's PATH (None: yes)
    restart_on_sync: bool | None = None  # a finished sync restarts the program (None: yes, when it can)


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
    delivery: Delivery | None = None  # None: the server's --delivery

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

    delivery = None
    if DELIVERY in ours:
        try:
            delivery = parse_delivery(ours[DELIVERY])
        except InvalidValue as error:
            problems.append(f"{name(DELIVERY)}: {error}, got {_show(ours[DELIVERY])}")

    pod_settings: dict[str, object] = {}
    container_settings: dict[str, dict[str, object]] = {}
    for key, value in ours.items():
        if key in OPT_IN_KEYS or key in POD_KEYS:
            continue
        base, _, container = key.partition(".")
        if base in POD_KEYS:
            problems.append(f"{name(key)}: {base} is for the whole pod; set {name(base)}")
            continue
        if base not in SETTING_KEYS:
            problems.append(f"{name(key)}: unknown annotation; settings are {', '.join(SETTING_KEYS + POD_KEYS)}")
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
            delivery=delivery,
        ),
        problems,
    )


def status_value(original: dict[str, dict], delivery: str, reason: str) -> str:
    """The `injected` annotation: what each wrapped container had before (command and args, the
    livenessProbe when it was removed or relaxed, its env PATH when the sync tools were put on
    it, first or last: `{"env": {"PATH": null}}` when it had none), and how the wrapper was
    delivered and why, compact JSON."""
    return json.dumps({"containers": original, "delivery": {"mode": delivery, "reason": reason}},
                      separators=(",", ":"), sort_keys=True)


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
    """Absolute, at most 1024 bytes, no control characters (they would end up in log lines)."""
    if not text.startswith("/") or len(text.encode()) > MAX_PATH_BYTES or _CONTROL.search(text):
        raise InvalidValue(f"expected an absolute path of at most {MAX_PATH_BYTES} bytes, without control characters")
    return text


def parse_paths(text: str) -> tuple[str, ...]:
    paths = tuple(p.strip() for p in text.split(","))
    try:
        if not all(paths):
            raise InvalidValue("empty")
        return tuple(parse_path(path) for path in paths)
    except InvalidValue:
        raise InvalidValue("expected comma-separated absolute paths") from None


def parse_exit_policy(text: str) -> str:
    if text not in EXIT_POLICIES:
        raise InvalidValue("expected " + ", ".join(f'"{p}"' for p in EXIT_POLICIES[:-1]) + f' or "{EXIT_POLICIES[-1]}"')
    return text


def parse_liveness_probe(text: str) -> str:
    if text not in LIVENESS_PROBE_POLICIES:
        raise InvalidValue('expected "keep", "remove" or "relax"')
    return text


def parse_delivery(text: str) -> Delivery:
    try:
        return Delivery(text)
    except ValueError:
        raise InvalidValue("expected " + ", ".join(f'"{d}"' for d in list(Delivery)[:-1])
                           + f' or "{list(Delivery)[-1]}"') from None


def parse_boolean(text: str) -> bool:
    """"true" or "false", like `enabled` (quoted in YAML, where a bare on/off/yes/no is a boolean)."""
    if text not in ("true", "false"):
        raise InvalidValue('expected "true" or "false"')
    return text == "true"


def parse_signal(text: str) -> str:
    """A name (case-insensitive, SIG optional) or a number 1-64; normalised to NAME or the number."""
    if text.isascii():  # str.upper() would make "ſigterm" SIGTERM; the wrapper compares ASCII
        upper = text.upper()
        name = upper[3:] if upper.startswith("SIG") else upper
        if name in SIGNALS:
            return name
        if _DIGITS.fullmatch(text) and 1 <= int(text) <= MAX_SIGNAL:
            return str(int(text))
    raise InvalidValue(f"expected a signal name like TERM, QUIT or WINCH, or a number 1-{MAX_SIGNAL}")


def parse_duration(text: str) -> str:
    """Digits and a unit, ms, s or m, at most 24h: 250ms, 5s, 1m."""
    match = _DURATION.fullmatch(text)
    if not match or int(match[1]) * _UNIT_MS[match[2]] > MAX_DURATION_MS:
        raise InvalidValue("expected a duration with a unit, like 250ms, 5s or 1m, of at most 24h")
    return text


def signal_from_runtime(text: str) -> str | None:
    """A stop signal as container runtimes read it (an image's StopSignal, a container's
    lifecycle.stopSignal) in the wrapper's grammar, or None when it names none.

    The runtimes' rule (moby's signal.ParseSignal, which containerd uses): a number, or a name,
    case-insensitive with SIG optional, including the aliases CLD, IOT and POLL and the real-time
    forms RTMIN, RTMIN+n and RTMAX-n (RTMIN being 34 and RTMAX 64 there)."""
    if not isinstance(text, str):
        return None
    try:
        return parse_signal(text)  # every spelling the wrapper takes means the same to the runtime
    except InvalidValue:
        pass
    if not text.isascii():
        return None
    name = text.upper().removeprefix("SIG")
    name = {"CLD": "CHLD", "IOT": "ABRT", "POLL": "IO"}.get(name, name)
    if name in SIGNALS:
        return name
    realtime = re.fullmatch(r"RTMIN(?:\+([0-9]{1,2}))?|RTMAX(?:-([0-9]{1,2}))?", name)
    if realtime:
        number = 34 + int(realtime[1] or 0) if name.startswith("RTMIN") else 64 - int(realtime[2] or 0)
        return str(number) if 34 <= number <= 64 else None
    return None


_PARSERS = {
    ENTRYPOINT: parse_entrypoint,
    RESTART_FILE: parse_path,
    WATCH: parse_paths,
    EXIT_POLICY: parse_exit_policy,
    STOP_SIGNAL: parse_signal,
    STOP_TIMEOUT: parse_duration,
    DEBOUNCE: parse_duration,
    ENV_FILE: parse_path,
    LIVENESS_PROBE: parse_liveness_probe,
    SYNC_TOOLS: parse_boolean,
    RESTART_ON_SYNC: parse_boolean,
}


def _field(key: str) -> str:
    return key.replace("-", "_")


def _split_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(","))
    return items if all(items) else ()


def _show(value: str, limit: int = 40) -> str:
    """Quote a user's value for a warning, cut short so the warning stays readable."""
    return json.dumps(value if len(value) <= limit else value[: limit - 1] + "…", ensure_ascii=False)
