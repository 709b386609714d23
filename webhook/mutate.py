"""Phase two of the mutation: a `Plan` and the image configs it asked for -> the mutated pod (pure).

resolve each candidate's entrypoint -> check for objects under our names that are not ours ->
build the injected objects. The webhook and `inject` both run `plan_pod` then `apply`; no HTTP,
no files, no API server here.

Bad input never raises and never half-mutates: the pod comes back unchanged with a
`restart-process:` warning that names the annotation or object at fault.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from . import names
from .config import InjectorConfig
from .contract import (
    ENTRYPOINT,
    LIVENESS_PROBE,
    RELAXED_PROBE_SECONDS,
    STOP_SIGNAL,
    ContainerSettings,
    signal_from_runtime,
    status_value,
)
from .entrypoint import Resolved, Unresolvable, resolve_entrypoint
from .images import ImageConfig, LookupFailure
from .plan import Candidate, Outcome, Plan, plan_pod

ImageConfigs = Mapping[str, ImageConfig | LookupFailure]


@dataclass(frozen=True)
class Mutation:
    pod: dict
    outcome: Outcome
    warnings: tuple[str, ...] = ()
    wrapped: tuple[str, ...] = ()


class Wrapping(NamedTuple):
    candidate: Candidate
    resolved: Resolved
    stop_signal: str | None  # for restarts: the annotation's, the container's lifecycle.stopSignal, the image's
    liveness_probe: str  # keep, remove or relax


def apply(plan: Plan, config: InjectorConfig, image_configs: ImageConfigs | None = None) -> Mutation:
    """The pod with the wrapper injected into the plan's candidates. `image_configs` are the
    registry's answers for `plan.lookups` (None: no lookup was made). The input is never modified."""
    pod = plan.pod
    if plan.final is Outcome.SKIPPED:
        return Mutation(pod, Outcome.SKIPPED)
    if plan.final is Outcome.INVALID:
        return _unchanged(pod, plan.messages)
    prefix = config.annotation_prefix
    messages = list(plan.messages)
    wrappings: list[Wrapping] = []
    for candidate in plan.candidates:
        container, settings = candidate.container, candidate.settings
        name = container["name"]
        resolved = resolve_entrypoint(container, settings, (image_configs or {}).get(container.get("image")))
        if isinstance(resolved, Unresolvable):
            messages.append(f'container "{name}" {resolved.reason}; set {prefix}/{ENTRYPOINT} '
                            f"(or {ENTRYPOINT}.{name}) to its entrypoint")
            continue
        stop_signal, problem = _stop_signal(container, settings, resolved)
        if problem:
            messages.append(f'container "{name}": {problem}; restarts stop the program with TERM (set '
                            f"{prefix}/{STOP_SIGNAL}, or {STOP_SIGNAL}.{name}, to choose)")
        probe_policy = settings.liveness_probe or config.default_liveness_probe
        if probe_policy == "keep" and container.get("livenessProbe"):
            messages.append(
                f'container "{name}" has a livenessProbe: when it fails while the program restarts or has '
                f"crashed, the kubelet restarts the container and the synced files are lost; set "
                f'{prefix}/{LIVENESS_PROBE} (or {LIVENESS_PROBE}.{name}) to "remove" or "relax"')
        wrappings.append(Wrapping(candidate, resolved, stop_signal, probe_policy))
    if not wrappings:
        return _unchanged(pod, messages) if messages else Mutation(pod, Outcome.SKIPPED)

    conflicts = _conflicts(pod["spec"], [w.candidate.container for w in wrappings])
    if conflicts:
        return _unchanged(pod, messages + conflicts)

    return Mutation(
        _inject(pod, wrappings, config),
        Outcome.INJECTED,
        tuple(_say(m) for m in messages),
        tuple(w.candidate.container["name"] for w in wrappings),
    )


def mutate_pod(pod: dict, config: InjectorConfig, namespace: str | None = None,
               image_configs: ImageConfigs | None = None) -> Mutation:
    """Both phases at once, for callers that already hold every image config they will get."""
    return apply(plan_pod(pod, config, namespace), config, image_configs)


def wrapper_command(name: str, program: list[str], settings: ContainerSettings, stop_signal: str | None,
                    exit_policy: str | None) -> list[str]:
    """`restart-wrapper run` with the options that were chosen; the wrapper's defaults otherwise.
    Two restart files: the user's (or /tmp/.restart-proc, where Tilt's extension put it) and the
    one in the trigger volume that `restart-wrapper trigger` writes in any container."""
    options = [f"--restart-file={settings.restart_file or names.DEFAULT_RESTART_FILE}",
               f"--restart-file={names.trigger_file(name)}"]
    options += [f"--watch={path}" for path in settings.watch]
    for option, value in (("exit-policy", settings.exit_policy or exit_policy), ("stop-signal", stop_signal),
                          ("stop-timeout", settings.stop_timeout), ("debounce", settings.debounce),
                          ("env-file", settings.env_file)):
        if value is not None:
            options.append(f"--{option}={value}")
    return [names.WRAPPER_PATH, "run", *options, "--", *program]


def _stop_signal(container: dict, settings: ContainerSettings, resolved: Resolved) -> tuple[str | None, str | None]:
    """The signal that stops the program for a restart, and a problem to report. The kubelet stops
    a container with its lifecycle.stopSignal, else the image's STOPSIGNAL; restarts should stop
    the program the same way (nginx stops gracefully on QUIT), unless the annotation says otherwise."""
    if settings.stop_signal is not None:
        return settings.stop_signal, None
    lifecycle = container.get("lifecycle")
    declared = lifecycle.get("stopSignal") if isinstance(lifecycle, dict) else None
    if declared is not None:
        return signal_from_runtime(declared), None
    image = resolved.image
    if image is None or image.stop_signal is None:
        return None, None
    signal = signal_from_runtime(image.stop_signal)
    if signal is None:
        return None, f"its image's StopSignal {image.stop_signal!r} names no signal"
    return signal, None


# --- checks --------------------------------------------------------------------------------


def _conflicts(spec: dict, wrapping: list[dict]) -> list[str]:
    """Objects under our names that we did not make. Ours (from an earlier injection) are reused."""
    problems = []
    for volume in spec.get("volumes") or []:
        if volume.get("name") in (names.VOLUME, names.TRIGGER_VOLUME) and not names.is_our_volume(volume):
            problems.append(f'the pod already has a volume named "{volume["name"]}"')
    for init in spec.get("initContainers") or []:
        if init.get("name") == names.INIT_CONTAINER and not names.is_our_init_container(init):
            problems.append(f'the pod already has an init container named "{names.INIT_CONTAINER}"')
    for container in wrapping:
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath", "")).rstrip("/")
            for ours, volume in ((names.MOUNT_PATH, names.VOLUME), (names.TRIGGER_DIR, names.TRIGGER_VOLUME)):
                if path == ours or mount.get("name") == volume:
                    problems.append(f'container "{container["name"]}" already mounts something at {ours}')
        if any(isinstance(e, dict) and e.get("name") == names.TRIGGER_ENV for e in container.get("env") or []):
            problems.append(f'container "{container["name"]}" already sets {names.TRIGGER_ENV}')
    return problems


# --- building the result -------------------------------------------------------------------


def _inject(pod: dict, wrappings: list[Wrapping], config: InjectorConfig) -> dict:
    """The mutated pod, built copy-on-write: new dicts and lists only along the paths that
    change, every untouched subtree shared with the input (which stays as it was)."""
    spec = pod["spec"]
    volumes = list(spec.get("volumes") or [])
    for name, size in ((names.VOLUME, config.volume_size_limit), (names.TRIGGER_VOLUME, names.TRIGGER_VOLUME_SIZE)):
        if not any(v.get("name") == name for v in volumes):
            volumes.append({"name": name, "emptyDir": {"sizeLimit": size}})

    lists = {"containers": list(spec["containers"]), "initContainers": list(spec.get("initContainers") or [])}
    original = {}
    for wrapping in wrappings:
        field, index, container, settings = wrapping.candidate
        wrapped, before = _wrap(container, wrapping, settings, config)
        lists[field][index] = wrapped
        original[container["name"]] = before
    # First, so that it has run before any sidecar starts, wrapped ones included.
    if not any(c.get("name") == names.INIT_CONTAINER for c in lists["initContainers"]):
        lists["initContainers"].insert(0, _install_container(config))

    metadata = pod.get("metadata") or {}
    status_key = f"{config.annotation_prefix}/{names.STATUS}"
    annotations = {**(metadata.get("annotations") or {}), status_key: status_value(original)}
    return {
        **pod,
        "metadata": {**metadata, "annotations": annotations},
        "spec": {**spec, "containers": lists["containers"], "volumes": volumes,
                 "initContainers": lists["initContainers"]},
    }


def _wrap(container: dict, wrapping: Wrapping, settings: ContainerSettings,
          config: InjectorConfig) -> tuple[dict, dict]:
    """The wrapped container, and what the status annotation records of the original."""
    name, resolved = container["name"], wrapping.resolved
    before = {"command": container.get("command"), "args": container.get("args")}
    wrapped = {
        **container,
        "command": wrapper_command(name, resolved.program, settings, wrapping.stop_signal, config.default_exit_policy),
        **({"args": resolved.args} if resolved.args is not None else {}),
        "volumeMounts": [*(container.get("volumeMounts") or []),
                         {"name": names.VOLUME, "mountPath": names.MOUNT_PATH, "readOnly": True},
                         {"name": names.TRIGGER_VOLUME, "mountPath": names.TRIGGER_DIR}],
        "env": [*(container.get("env") or []), {"name": names.TRIGGER_ENV, "value": names.trigger_file(name)}],
    }
    probe = container.get("livenessProbe")
    if probe and wrapping.liveness_probe == "remove":
        del wrapped["livenessProbe"]
        before["livenessProbe"] = probe
    elif probe and wrapping.liveness_probe == "relax":
        relaxed = _relaxed(probe)
        if relaxed is not probe:
            wrapped["livenessProbe"] = relaxed
            before["livenessProbe"] = probe
    return wrapped, before


def _relaxed(probe: dict) -> dict:
    """The probe, allowed to fail for RELAXED_PROBE_SECONDS (or longer, if it already was)."""
    period = probe.get("periodSeconds") if isinstance(probe.get("periodSeconds"), int) else 10
    threshold = probe.get("failureThreshold") if isinstance(probe.get("failureThreshold"), int) else 3
    wanted = -(-RELAXED_PROBE_SECONDS // max(period, 1))
    return probe if threshold >= wanted else {**probe, "failureThreshold": wanted}


def _install_container(config: InjectorConfig) -> dict:
    """The init container that copies the wrapper into the shared volume; passes PSS "restricted".

    Built once per configuration and shared by every pod it goes into, like every other subtree
    the mutation does not change: results are never modified in place."""
    cached = _INSTALL_CONTAINERS.get(id(config))
    if cached is None or cached[0] is not config:
        if len(_INSTALL_CONTAINERS) > 16:
            _INSTALL_CONTAINERS.clear()
        cached = _INSTALL_CONTAINERS[id(config)] = (config, _build_install_container(config))
    return cached[1]


# id(config) -> (config, container); holding the config keeps its id from being reused.
_INSTALL_CONTAINERS: dict[int, tuple[InjectorConfig, dict]] = {}


def _build_install_container(config: InjectorConfig) -> dict:
    return {
        "name": names.INIT_CONTAINER,
        "image": config.wrapper_image,
        "imagePullPolicy": config.wrapper_image_pull_policy,
        "command": [names.IMAGE_WRAPPER_PATH, "install", names.MOUNT_PATH],
        "volumeMounts": [{"name": names.VOLUME, "mountPath": names.MOUNT_PATH}],
        "resources": copy.deepcopy(config.init_resources),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": names.INSTALL_UID,
            "runAsGroup": names.INSTALL_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _unchanged(pod: dict, problems: list[str] | tuple[str, ...]) -> Mutation:
    return Mutation(pod, Outcome.INVALID, tuple(_say(p + "; pod left unchanged") for p in problems))


def _say(message: str) -> str:
    """Every warning we return starts the same way, so users can tell whose it is."""
    return f"restart-process: {message}"
