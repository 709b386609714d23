"""Phase two of the mutation: a `Plan` and the image configs it asked for -> the patch (pure).

resolve each candidate's entrypoint -> choose how the wrapper is delivered (init container or image
volume, `delivery`) -> check for objects under our names that are not ours -> the JSON Patch that
injects the wrapper. The patch is the mutation: the webhook answers with it as it is, and the
mutated pod (`Mutation.pod`, for `inject` and the tests) is the patch applied.
The webhook and `inject` both run `plan_pod` then `apply`; no HTTP, no files, no API server here.

Bad input never raises and never half-mutates: the pod comes back unchanged with a
`restart-process:` warning that names the annotation or object at fault.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from . import names
from .config import InjectorConfig
from .contract import (
    DELIVERY,
    ENTRYPOINT,
    LIVENESS_PROBE,
    RELAXED_PROBE_SECONDS,
    RESTART_ON_SYNC,
    STOP_SIGNAL,
    SYNC_TOOLS,
    ContainerSettings,
    signal_from_runtime,
    status_value,
)
from .delivery import Choice, ClusterFacts, Delivery, choose_delivery
from .entrypoint import Resolved, Unresolvable, resolve_entrypoint
from .images import ImageConfig, LookupFailure
from .patch import patched
from .plan import Candidate, Outcome, Plan, plan_pod
from .synctools import PathChange, PathUnknown, tools_on_path

ImageConfigs = Mapping[str, ImageConfig | LookupFailure]


@dataclass(frozen=True)
class Mutation:
    source: dict  # the pod as it came
    outcome: Outcome
    warnings: tuple[str, ...] = ()
    wrapped: tuple[str, ...] = ()
    patch: tuple[dict, ...] = ()  # RFC 6902 operations: what the webhook answers
    delivery: Delivery | None = None  # how the wrapper reaches the pod, when injected

    @functools.cached_property
    def pod(self) -> dict:
        """The pod with the patch applied (copy-on-write: untouched parts are the source's)."""
        return patched(self.source, self.patch) if self.patch else self.source


class Wrapping(NamedTuple):
    candidate: Candidate
    resolved: Resolved
    stop_signal: str | None  # for restarts: the annotation's, the container's lifecycle.stopSignal, the image's
    liveness_probe: str  # keep, remove or relax
    path: PathChange | None  # how PATH changes so that the sync tools are found
    sync: bool  # restart-on-sync takes effect: --sync-file, RESTART_WRAPPER_SYNC_FILE, the tools first


def apply(plan: Plan, config: InjectorConfig, image_configs: ImageConfigs | None = None,
          facts: ClusterFacts | None = None) -> Mutation:
    """The injection of the wrapper into the plan's candidates, as a patch (or why not, as warnings).
    `image_configs` are the registry's answers for `plan.lookups` (None: no lookup was made);
    `facts` what the webhook knows of the cluster, for the delivery (None: no cluster, as in
    `inject`). The input is never modified."""
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
        image = (image_configs or {}).get(container.get("image"))
        resolved = resolve_entrypoint(container, settings, image)
        if isinstance(resolved, Unresolvable):
            messages.append(f'container "{name}" {resolved.reason}; set {prefix}/{ENTRYPOINT} '
                            f"(or {ENTRYPOINT}.{name}) to its entrypoint")
            continue
        stop_signal, problem = _stop_signal(container, settings, image)
        if problem:
            messages.append(f'container "{name}": {problem}; restarts stop the program with TERM (set '
                            f"{prefix}/{STOP_SIGNAL}, or {STOP_SIGNAL}.{name}, to choose)")
        probe_policy = settings.liveness_probe or config.default_liveness_probe
        if probe_policy == "keep" and container.get("livenessProbe"):
            messages.append(
                f'container "{name}" has a livenessProbe: when it fails while the program restarts or has '
                f"crashed, the kubelet restarts the container and the synced files are lost; set "
                f'{prefix}/{LIVENESS_PROBE} (or {LIVENESS_PROBE}.{name}) to "remove" or "relax"')
        path = tools_on_path(container, settings, image, first=settings.restart_on_sync is not False)
        sync = _restarts_on_sync(settings, path)
        if isinstance(path, PathUnknown):
            # By default, restart-on-sync is lost with the tools; said here, in the same sentence.
            lost = ", and a sync will not restart the program" if settings.restart_on_sync is None else ""
            messages.append(
                f'container "{name}": PATH unknown ({path.reason}), so tar and rm for live update are not on it{lost}; '
                f"set PATH in its env (the webhook adds {names.TOOLS_DIR} to it), or set {prefix}/{SYNC_TOOLS} "
                f'(or {SYNC_TOOLS}.{name}) to "false"')
        if settings.restart_on_sync is True and not sync:
            messages.append(_cannot_restart_on_sync(name, settings, prefix))
        wrappings.append(Wrapping(candidate, resolved, stop_signal, probe_policy,
                                  None if isinstance(path, PathUnknown) else path, sync))
    if not wrappings:
        return _unchanged(pod, messages) if messages else Mutation(pod, Outcome.SKIPPED)

    choice = _delivery(plan, config, facts)
    if choice.warning:
        messages.append(choice.warning)
    conflicts = _conflicts(pod["spec"], [w.candidate.container for w in wrappings], choice.delivery)
    if conflicts:
        return _unchanged(pod, messages + conflicts)

    return Mutation(
        pod,
        Outcome.INJECTED,
        tuple(_say(m) for m in messages),
        tuple(w.candidate.container["name"] for w in wrappings),
        tuple(_patch(pod, wrappings, config, choice)),
        choice.delivery,
    )


def mutate_pod(pod: dict, config: InjectorConfig, namespace: str | None = None,
               image_configs: ImageConfigs | None = None, facts: ClusterFacts | None = None) -> Mutation:
    """Both phases at once, for callers that already hold every image config they will get."""
    return apply(plan_pod(pod, config, namespace), config, image_configs, facts)


def _delivery(plan: Plan, config: InjectorConfig, facts: ClusterFacts | None) -> Choice:
    """The pod's own choice over the server's; but a wrapper volume or install container the pod
    already holds (a spec copied from an injected pod) decides, so the two never mix: an image
    volume cannot be installed into, and an emptyDir without the install container stays empty."""
    already = _delivered_by(plan.pod["spec"])
    if already == Delivery.IMAGE_VOLUME:
        return Choice(already, "the pod already has the wrapper's image volume")
    if already == Delivery.INIT_CONTAINER:
        return Choice(already, "the pod already has the wrapper's emptyDir or install container")
    if plan.delivery is not None:
        return choose_delivery(plan.delivery, facts, plan.namespace, f"{config.annotation_prefix}/{DELIVERY}")
    return choose_delivery(config.delivery, facts, plan.namespace)


def _delivered_by(spec: dict) -> Delivery | None:
    for volume in spec.get("volumes") or []:
        if volume.get("name") == names.VOLUME and names.is_our_volume(volume):
            return Delivery.IMAGE_VOLUME if names.is_image_volume(volume) else Delivery.INIT_CONTAINER
    if any(names.is_our_init_container(c) for c in spec.get("initContainers") or []):
        return Delivery.INIT_CONTAINER
    return None


def wrapper_command(name: str, program: list[str], settings: ContainerSettings, stop_signal: str | None,
                    exit_policy: str | None, sync: bool = False) -> list[str]:
    """`restart-wrapper run` with the options that were chosen; the wrapper's defaults otherwise.
    Two restart files: the user's (or /tmp/.restart-proc, where Tilt's extension put it) and the
    one in the trigger volume that `restart-wrapper trigger` writes in any container. With `sync`
    (restart-on-sync in effect), the file in the trigger volume the sync tools report into."""
    options = [f"--restart-file={settings.restart_file or names.DEFAULT_RESTART_FILE}",
               f"--restart-file={names.trigger_file(name)}"]
    if sync:
        options.append(f"--sync-file={names.sync_file(name)}")
    options += [f"--watch={path}" for path in settings.watch]
    for option, value in (("exit-policy", settings.exit_policy or exit_policy), ("stop-signal", stop_signal),
                          ("stop-timeout", settings.stop_timeout), ("debounce", settings.debounce),
                          ("env-file", settings.env_file)):
        if value is not None:
            options.append(f"--{option}={value}")
    return [names.WRAPPER_PATH, "run", *options, "--", *program]


def _restarts_on_sync(settings: ContainerSettings, path: PathChange | PathUnknown | None) -> bool:
    """Whether restart-on-sync takes effect: not turned off, and the sync tools, which are what
    tells the wrapper that a sync finished, end up on PATH: put there (a change), or already
    there (no change while the tools are wanted)."""
    return (settings.restart_on_sync is not False and settings.sync_tools is not False
            and not isinstance(path, PathUnknown))


def _cannot_restart_on_sync(name: str, settings: ContainerSettings, prefix: str) -> str:
    """The warning for a restart-on-sync "true" that cannot take effect, and what to do."""
    if settings.sync_tools is False:
        why = f'{prefix}/{SYNC_TOOLS} (or {SYNC_TOOLS}.{name}) is "false"'
        fix = (f'set {SYNC_TOOLS} to "true", or {RESTART_ON_SYNC} to "false" and trigger restarts '
               f"({names.WRAPPER_PATH} trigger)")
    else:
        why, fix = "its PATH is unknown", "set PATH in its env"
    return (f'container "{name}": {prefix}/{RESTART_ON_SYNC} (or {RESTART_ON_SYNC}.{name}) is "true", but syncs '
            f"cannot restart the program: the wrapper learns of a sync from its own tar and rm on PATH, "
            f"and {why}; {fix}")


def _stop_signal(container: dict, settings: ContainerSettings,
                 image: ImageConfig | LookupFailure | None) -> tuple[str | None, str | None]:
    """The signal that stops the program for a restart, and a problem to report. The kubelet stops
    a container with its lifecycle.stopSignal, else the image's STOPSIGNAL (whatever its command);
    restarts should stop the program the same way (nginx stops gracefully on QUIT), and the
    wrapper must take it as "shut down", unless the annotation says otherwise. `image` is the
    image's config when it was looked up (for the program, or for PATH)."""
    if settings.stop_signal is not None:
        return settings.stop_signal, None
    lifecycle = container.get("lifecycle")
    declared = lifecycle.get("stopSignal") if isinstance(lifecycle, dict) else None
    if declared is not None:
        return signal_from_runtime(declared), None
    if not isinstance(image, ImageConfig) or image.stop_signal is None:
        return None, None
    signal = signal_from_runtime(image.stop_signal)
    if signal is None:
        return None, f"its image's StopSignal {image.stop_signal!r} names no signal"
    return signal, None


# --- checks --------------------------------------------------------------------------------


def _conflicts(spec: dict, wrapping: list[dict], delivery: Delivery) -> list[str]:
    """Objects under the names of what we are about to add that we did not make. Ours (from an
    earlier injection) are reused."""
    problems = []
    for volume in spec.get("volumes") or []:
        if volume.get("name") in (names.VOLUME, names.TRIGGER_VOLUME) and not names.is_our_volume(volume):
            problems.append(f'the pod already has a volume named "{volume["name"]}"')
    for init in spec.get("initContainers") or []:
        if (delivery == Delivery.INIT_CONTAINER and init.get("name") == names.INIT_CONTAINER
                and not names.is_our_init_container(init)):
            problems.append(f'the pod already has an init container named "{names.INIT_CONTAINER}"')
    for container in wrapping:
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath", "")).rstrip("/")
            for ours, volume in ((names.MOUNT_PATH, names.VOLUME), (names.TRIGGER_DIR, names.TRIGGER_VOLUME)):
                if path == ours or mount.get("name") == volume:
                    problems.append(f'container "{container["name"]}" already mounts something at {ours}')
        for variable in (names.TRIGGER_ENV, names.SYNC_ENV):
            if any(isinstance(e, dict) and e.get("name") == variable for e in container.get("env") or []):
                problems.append(f'container "{container["name"]}" already sets {variable}')
    return problems


# --- building the result -------------------------------------------------------------------


def _patch(pod: dict, wrappings: list[Wrapping], config: InjectorConfig, choice: Choice) -> list[dict]:
    """The injection as RFC 6902 operations, in the order that keeps indices right: edits of the
    wrapped containers (sidecars at their indices before the install container goes in front),
    then our volumes, then the install container (when the wrapper comes that way), then the
    status annotation. The webhook sends these as they are; `Mutation.pod` applies them, for
    `inject` and the tests."""
    spec = pod["spec"]
    ops: list[dict] = []
    original = {}
    for wrapping in wrappings:
        field, index, container, settings = wrapping.candidate
        ops += _wrap(f"/spec/{field}/{index}", container, wrapping, settings, config, original)
    volumes = spec.get("volumes")
    by_image = choice.delivery == Delivery.IMAGE_VOLUME
    wrapper_volume = (
        {"name": names.VOLUME, "image": {"reference": config.wrapper_image, "pullPolicy": config.wrapper_image_pull_policy}}
        if by_image else {"name": names.VOLUME, "emptyDir": {"sizeLimit": config.volume_size_limit}})
    trigger_volume = {"name": names.TRIGGER_VOLUME, "emptyDir": {"sizeLimit": names.TRIGGER_VOLUME_SIZE}}
    ops += _append("/spec/volumes", volumes, *(
        volume for volume in (wrapper_volume, trigger_volume)
        if not any(v.get("name") == volume["name"] for v in volumes or [])))
    # First, so that it has run before any sidecar starts, wrapped ones included.
    inits = spec.get("initContainers")
    if not by_image and not any(c.get("name") == names.INIT_CONTAINER for c in inits or []):
        install = _install_container(config)
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": install} if inits
                   else {"op": "add", "path": "/spec/initContainers", "value": [install]})
    status = f"{config.annotation_prefix}/{names.STATUS}".replace("~", "~0").replace("/", "~1")
    ops.append({"op": "add", "path": f"/metadata/annotations/{status}",
                "value": status_value(original, choice.delivery, choice.reason)})
    return ops


def _wrap(path: str, container: dict, wrapping: Wrapping, settings: ContainerSettings, config: InjectorConfig,
          original: dict) -> list[dict]:
    """The operations that wrap one container; what it had before goes into `original`."""
    name, resolved = container["name"], wrapping.resolved
    before = original[name] = {"command": container.get("command"), "args": container.get("args")}
    command = wrapper_command(name, resolved.program, settings, wrapping.stop_signal, config.default_exit_policy,
                              wrapping.sync)
    ops = [{"op": "replace" if "command" in container else "add", "path": f"{path}/command", "value": command}]
    if resolved.args is not None:
        ops.append({"op": "replace" if "args" in container else "add", "path": f"{path}/args", "value": resolved.args})
    ops += _append(f"{path}/volumeMounts", container.get("volumeMounts"),
                   {"name": names.VOLUME, "mountPath": names.MOUNT_PATH, "readOnly": True},
                   {"name": names.TRIGGER_VOLUME, "mountPath": names.TRIGGER_DIR})
    env = [{"name": names.TRIGGER_ENV, "value": names.trigger_file(name)}]
    if wrapping.sync:
        env.append({"name": names.SYNC_ENV, "value": names.sync_file(name)})
    change = wrapping.path
    if change is not None and change.index is None:
        env.append({"name": "PATH", "value": change.value})  # last: earlier $(VAR) references keep their meaning
    elif change is not None:
        ops.append({"op": "replace", "path": f"{path}/env/{change.index}/value", "value": change.value})
    if change is not None:
        before["env"] = {"PATH": change.before}
    ops += _append(f"{path}/env", container.get("env"), *env)
    probe = container.get("livenessProbe")
    if probe and wrapping.liveness_probe == "remove":
        ops.append({"op": "remove", "path": f"{path}/livenessProbe"})
        before["livenessProbe"] = probe
    elif probe and wrapping.liveness_probe == "relax":
        relaxed = _relaxed(probe)
        if relaxed is not probe:
            ops.append({"op": "add", "path": f"{path}/livenessProbe/failureThreshold",
                        "value": relaxed["failureThreshold"]})
            before["livenessProbe"] = probe
    return ops


def _append(path: str, existing, *values) -> list[dict]:
    """Operations that add `values` at the end of the list at `path` (`-`: after the last), or
    one that sets the list when there is none (absent, null or empty)."""
    if not values:
        return []
    if not existing:
        return [{"op": "add", "path": path, "value": list(values)}]
    return [{"op": "add", "path": f"{path}/-", "value": value} for value in values]


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
