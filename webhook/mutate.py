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

from . import names
from .config import InjectorConfig
from .contract import ENTRYPOINT, ContainerSettings, status_value
from .entrypoint import Resolved, Unresolvable, resolve_entrypoint
from .images import ImageConfig, LookupFailure
from .plan import Outcome, Plan, plan_pod

ImageConfigs = Mapping[str, ImageConfig | LookupFailure]


@dataclass(frozen=True)
class Mutation:
    pod: dict
    outcome: Outcome
    warnings: tuple[str, ...] = ()
    wrapped: tuple[str, ...] = ()


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
    to_wrap: dict[int, tuple[Resolved, ContainerSettings]] = {}
    for candidate in plan.candidates:
        name = candidate.container["name"]
        resolved = resolve_entrypoint(candidate.container, candidate.settings,
                                      (image_configs or {}).get(candidate.container.get("image")))
        if isinstance(resolved, Unresolvable):
            messages.append(f'container "{name}" {resolved.reason}; set {prefix}/{ENTRYPOINT} '
                            f"(or {ENTRYPOINT}.{name}) to its entrypoint")
            continue
        to_wrap[candidate.index] = (resolved, candidate.settings)
    if not to_wrap:
        return _unchanged(pod, messages) if messages else Mutation(pod, Outcome.SKIPPED)

    containers = pod["spec"]["containers"]
    conflicts = _conflicts(pod["spec"], [containers[i] for i in to_wrap])
    if conflicts:
        return _unchanged(pod, messages + conflicts)

    return Mutation(
        _inject(pod, to_wrap, config),
        Outcome.INJECTED,
        tuple(_say(m) for m in messages),
        tuple(containers[i]["name"] for i in to_wrap),
    )


def mutate_pod(pod: dict, config: InjectorConfig, namespace: str | None = None,
               image_configs: ImageConfigs | None = None) -> Mutation:
    """Both phases at once, for callers that already hold every image config they will get."""
    return apply(plan_pod(pod, config, namespace), config, image_configs)


def wrapper_command(entrypoint: list[str], settings: ContainerSettings) -> list[str]:
    return [names.WRAPPER_PATH, "run", *settings.wrapper_options(), "--", *entrypoint]


# --- checks --------------------------------------------------------------------------------


def _conflicts(spec: dict, wrapping: list[dict]) -> list[str]:
    """Objects under our names that we did not make. Ours (from an earlier injection) are reused."""
    problems = []
    for volume in spec.get("volumes") or []:
        if volume.get("name") == names.VOLUME and not names.is_our_volume(volume):
            problems.append(f'the pod already has a volume named "{names.VOLUME}"')
    for init in spec.get("initContainers") or []:
        if init.get("name") == names.INIT_CONTAINER and not names.is_our_init_container(init):
            problems.append(f'the pod already has an init container named "{names.INIT_CONTAINER}"')
    for container in wrapping:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") == names.MOUNT_PATH or mount.get("name") == names.VOLUME:
                problems.append(f'container "{container["name"]}" already mounts something at {names.MOUNT_PATH}')
    return problems


# --- building the result -------------------------------------------------------------------


def _inject(pod: dict, to_wrap: dict[int, tuple[Resolved, ContainerSettings]], config: InjectorConfig) -> dict:
    """The mutated pod, built copy-on-write: new dicts and lists only along the paths that
    change, every untouched subtree shared with the input (which stays as it was)."""
    spec = pod["spec"]
    volumes = list(spec.get("volumes") or [])
    if not any(v.get("name") == names.VOLUME for v in volumes):
        volumes.append({"name": names.VOLUME, "emptyDir": {"sizeLimit": config.volume_size_limit}})
    inits = list(spec.get("initContainers") or [])
    if not any(c.get("name") == names.INIT_CONTAINER for c in inits):
        inits.insert(0, _install_container(config))

    containers = list(spec["containers"])
    original = {}
    for index, (resolved, settings) in to_wrap.items():
        container = containers[index]
        original[container["name"]] = {"command": container.get("command"), "args": container.get("args")}
        mount = {"name": names.VOLUME, "mountPath": names.MOUNT_PATH, "readOnly": True}
        containers[index] = {
            **container,
            "command": wrapper_command(resolved.program, settings),
            **({"args": resolved.args} if resolved.args is not None else {}),
            "volumeMounts": [*(container.get("volumeMounts") or []), mount],
        }

    metadata = pod.get("metadata") or {}
    status_key = f"{config.annotation_prefix}/{names.STATUS}"
    annotations = {**(metadata.get("annotations") or {}), status_key: status_value(original)}
    return {
        **pod,
        "metadata": {**metadata, "annotations": annotations},
        "spec": {**spec, "containers": containers, "volumes": volumes, "initContainers": inits},
    }


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
