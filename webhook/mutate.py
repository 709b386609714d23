"""(pod, config) -> mutated pod + warnings. The one transform the webhook and the CLI share.

Pure: no HTTP, no files, no API server. The flow reads top to bottom:
should we look at this pod at all -> read the contract -> choose containers (the plan) ->
resolve each entrypoint -> check for conflicts -> build the injected objects.
Image configs from the registry are looked up by the caller (`images_to_look_up` says which)
and handed in, so this module never does I/O.

Bad input never raises and never half-mutates: the pod comes back unchanged with a
`restart-process:` warning that names the annotation or object at fault.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from . import config as names
from .config import InjectorConfig
from .contract import CONTAINERS, ENTRYPOINT, IMAGES, STATUS, Contract, ContainerSettings, read_contract, status_value
from .images import ImageConfig, LookupFailure, image_matches

SKIPPED = "skipped"  # not for us: no opt-in, excluded, already injected, nothing to wrap
INJECTED = "injected"
INVALID = "invalid"  # opted in, but the annotations or the pod are wrong: unchanged, with warnings

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class Mutation:
    pod: dict
    outcome: str
    warnings: tuple[str, ...] = ()
    wrapped: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """A pod that opted in, passed the checks, and has these containers to consider."""

    containers: list
    candidates: list  # (index, container, settings)
    warnings: list


def mutate_pod(pod: dict, config: InjectorConfig, namespace: str | None = None,
               image_configs: Mapping[str, ImageConfig | LookupFailure] | None = None) -> Mutation:
    """Return the pod with the restart wrapper injected into the containers it opted in.

    `namespace` is the request's namespace, for pods whose metadata does not carry one yet.
    `image_configs` are the registry's answers for `images_to_look_up(pod, ...)`, fetched by the
    caller (None: no lookup was made). The input is never modified.
    """
    plan = _plan(pod, config, namespace)
    if isinstance(plan, Mutation):
        return plan
    prefix = config.annotation_prefix
    warnings = list(plan.warnings)
    to_wrap = {}  # container index -> ((program, args), settings)
    for index, container, settings in plan.candidates:
        image = container.get("image")
        resolved = resolve_entrypoint(container, settings, (image_configs or {}).get(image))
        if isinstance(resolved, str):
            warnings.append(f'container "{container["name"]}" {resolved}; set {prefix}/{ENTRYPOINT} '
                            f"(or {ENTRYPOINT}.{container['name']}) to its entrypoint")
            continue
        to_wrap[index] = (resolved, settings)
    if not to_wrap:
        return _unchanged(pod, warnings) if warnings else Mutation(pod, SKIPPED)

    conflicts = _conflicts(pod["spec"], [plan.containers[i] for i in to_wrap])
    if conflicts:
        return _unchanged(pod, warnings + conflicts)

    return Mutation(
        _inject(pod, to_wrap, config),
        INJECTED,
        tuple(_say(w) for w in warnings),
        tuple(plan.containers[i]["name"] for i in to_wrap),
    )


def images_to_look_up(pod: dict, config: InjectorConfig, namespace: str | None = None) -> list[str]:
    """The images whose ENTRYPOINT/CMD the mutation needs: selected containers with neither an
    `entrypoint` annotation nor a `command`."""
    plan = _plan(pod, config, namespace)
    if isinstance(plan, Mutation):
        return []
    return list(dict.fromkeys(
        c["image"] for _, c, settings in plan.candidates
        if settings.entrypoint is None and not _has_command(c) and isinstance(c.get("image"), str) and c["image"]
    ))


def node_arch(pod: dict) -> str | None:
    """The CPU architecture the pod asks for, if it asks (nodeSelector kubernetes.io/arch)."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    selector = spec.get("nodeSelector") if isinstance(spec, dict) else None
    arch = selector.get("kubernetes.io/arch") if isinstance(selector, dict) else None
    return arch if isinstance(arch, str) else None


def _plan(pod: dict, config: InjectorConfig, namespace: str | None) -> _Plan | Mutation:
    """Everything before entrypoint resolution: skip, reject, or the containers to consider."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {} if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return Mutation(pod, SKIPPED)  # no readable annotations: cannot have opted in
    spec = pod.get("spec") or {}
    namespace = metadata.get("namespace") or namespace
    if namespace in config.excluded_namespaces or MIRROR_POD_ANNOTATION in annotations or _is_windows(spec):
        return Mutation(pod, SKIPPED)

    prefix = config.annotation_prefix
    contract, problems = read_contract(annotations, prefix)
    if not contract.opted_in or contract.disabled or contract.already_injected:
        return Mutation(pod, SKIPPED)

    malformed = _malformed(spec)
    if malformed:
        return _unchanged(pod, [malformed])
    containers = spec["containers"]
    problems += _check_container_references(contract, spec, prefix)
    if problems:
        return _unchanged(pod, problems)

    selected, warnings = _select(contract, containers, prefix)
    candidates = [
        (index, container, contract.settings_for(container["name"]))
        for index, container in enumerate(containers)
        if container.get("name") in selected and not _already_wrapped(container)
    ]
    return _Plan(containers, candidates, warnings)


def resolve_entrypoint(container: dict, settings: ContainerSettings,
                       image: ImageConfig | LookupFailure | None = None) -> tuple[list[str], list | None] | str:
    """(program, args) where args is None to keep the container's own; or why it cannot be resolved.

    In order: the `entrypoint` annotation; the container's `command`; the image's ENTRYPOINT/CMD.
    Kubernetes ignores the image's ENTRYPOINT *and* CMD once a container sets `command`, so with
    the image config: program = ENTRYPOINT, and args = the container's args, else the image's CMD
    (set explicitly, or it would be lost). An empty ENTRYPOINT makes the args the program.
    """
    if settings.entrypoint is not None:
        return list(settings.entrypoint), None
    if _has_command(container):
        return list(container["command"]), None
    if image is None:
        return "has no command to restart"
    if isinstance(image, LookupFailure):
        return f"has no command and its image config could not be read ({image.reason})"
    own_args = container.get("args")
    if own_args:
        return list(image.entrypoint), None
    if not image.entrypoint and not image.cmd:
        return "has no command, and its image has no ENTRYPOINT or CMD"
    return list(image.entrypoint), list(image.cmd) if image.cmd else None


def _has_command(container: dict) -> bool:
    command = container.get("command")
    return isinstance(command, list) and bool(command) and all(isinstance(w, str) for w in command)


def wrapper_command(entrypoint: list[str], settings: ContainerSettings) -> list[str]:
    return [names.WRAPPER_PATH, "run", *settings.wrapper_options(), "--", *entrypoint]


# --- selection and checks ------------------------------------------------------------------


def _malformed(spec: object) -> str | None:
    """The first field we read that is not shaped like a Pod's (the API server never sends
    these, but `inject` reads whatever YAML it is given)."""
    if not isinstance(spec, dict):
        return "spec is not a mapping"
    for field in ("containers", "initContainers", "volumes"):
        items = spec.get(field) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return f"spec.{field} is not a list of mappings"
        if field != "volumes" and not all(isinstance(i.get("name"), str) for i in items):
            return f"spec.{field} has an entry without a name"
    if not spec.get("containers"):
        return "spec.containers is empty"
    for container in spec["containers"]:
        mounts = container.get("volumeMounts") or []
        if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
            return f'container "{container["name"]}": volumeMounts is not a list of mappings'
    return None


def _check_container_references(contract: Contract, spec: dict, prefix: str) -> list[str]:
    """Every container named in `containers` or a `<key>.<name>` setting must exist and be selected."""
    app = {c["name"] for c in spec["containers"]}
    init = {c["name"] for c in spec.get("initContainers") or []}
    problems = []

    def unknown(key: str, name: str) -> str:
        if name in init:
            return f'{prefix}/{key}: "{name}" is an init container; only spec.containers can be wrapped'
        return f'{prefix}/{key}: no container named "{name}"; containers are {", ".join(sorted(app))}'

    for name in contract.container_names:
        if name not in app:
            problems.append(unknown(CONTAINERS, name))
    for name, settings in contract.container_settings.items():
        for key in settings:
            if name not in app:
                problems.append(unknown(f"{key}.{name}", name))
            elif contract.container_names or contract.image_patterns:
                chosen = name in contract.container_names or any(
                    image_matches(str(c.get("image", "")), p)
                    for c in spec["containers"]
                    if c.get("name") == name
                    for p in contract.image_patterns
                )
                if not chosen:
                    problems.append(
                        f'{prefix}/{key}.{name}: container "{name}" is not selected; add it to {prefix}/{CONTAINERS}'
                    )
    return problems


def _select(contract: Contract, containers: list[dict], prefix: str) -> tuple[set[str], list[str]]:
    if contract.every_container:
        return {c.get("name") for c in containers}, []
    selected = set(contract.container_names)
    warnings = []
    for pattern in contract.image_patterns:
        matching = {c.get("name") for c in containers if image_matches(str(c.get("image", "")), pattern)}
        if not matching:
            warnings.append(f'{prefix}/{IMAGES}: no container image matches "{pattern}"')
        selected |= matching
    return selected, warnings


def _already_wrapped(container: dict) -> bool:
    command = container.get("command")
    return isinstance(command, list) and bool(command) and command[0] == names.WRAPPER_PATH


def _conflicts(spec: dict, wrapping: list[dict]) -> list[str]:
    """Objects under our names that we did not make. Ours (from an earlier injection) are reused."""
    problems = []
    for volume in spec.get("volumes") or []:
        if volume.get("name") == names.VOLUME and not _is_our_volume(volume):
            problems.append(f'the pod already has a volume named "{names.VOLUME}"')
    for init in spec.get("initContainers") or []:
        if init.get("name") == names.INIT_CONTAINER and not _is_our_init_container(init):
            problems.append(f'the pod already has an init container named "{names.INIT_CONTAINER}"')
    for container in wrapping:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") == names.MOUNT_PATH or mount.get("name") == names.VOLUME:
                problems.append(f'container "{container["name"]}" already mounts something at {names.MOUNT_PATH}')
    return problems


def _is_our_volume(volume: dict) -> bool:
    return set(volume) == {"name", "emptyDir"}


def _is_our_init_container(container: dict) -> bool:
    command = container.get("command") or []
    return command[:2] == [names.IMAGE_WRAPPER_PATH, "install"]


def _is_windows(spec: object) -> bool:
    if not isinstance(spec, dict):
        return False
    selector = spec.get("nodeSelector") or {}
    os_field = spec.get("os") or {}
    return (isinstance(selector, dict) and selector.get("kubernetes.io/os") == "windows") or (
        isinstance(os_field, dict) and os_field.get("name") == "windows"
    )


# --- building the result -------------------------------------------------------------------


def _inject(pod: dict, to_wrap: dict, config: InjectorConfig) -> dict:
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
    for index, ((program, args), settings) in to_wrap.items():
        container = containers[index]
        original[container["name"]] = {"command": container.get("command"), "args": container.get("args")}
        mount = {"name": names.VOLUME, "mountPath": names.MOUNT_PATH, "readOnly": True}
        containers[index] = {
            **container,
            "command": wrapper_command(program, settings),
            **({"args": args} if args is not None else {}),
            "volumeMounts": [*(container.get("volumeMounts") or []), mount],
        }

    metadata = pod.get("metadata") or {}
    annotations = {**(metadata.get("annotations") or {}), f"{config.annotation_prefix}/{STATUS}": status_value(original)}
    return {
        **pod,
        "metadata": {**metadata, "annotations": annotations},
        "spec": {**spec, "containers": containers, "volumes": volumes, "initContainers": inits},
    }


def _install_container(config: InjectorConfig) -> dict:
    """The init container that copies the wrapper into the shared volume; passes PSS "restricted"."""
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


def _unchanged(pod: dict, problems: list[str]) -> Mutation:
    return Mutation(pod, INVALID, tuple(_say(p + "; pod left unchanged") for p in problems))


def _say(message: str) -> str:
    return f"restart-process: {message}"
