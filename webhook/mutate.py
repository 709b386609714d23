"""(pod, config) -> mutated pod + warnings. The one transform the webhook and the CLI share.

Pure: no HTTP, no files, no API server. The flow reads top to bottom:
should we look at this pod at all -> read the contract -> choose containers ->
resolve each entrypoint -> check for conflicts -> build the injected objects.

Bad input never raises and never half-mutates: the pod comes back unchanged with a
`restart-process:` warning that names the annotation or object at fault.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from . import config as names
from .config import InjectorConfig
from .contract import CONTAINERS, ENTRYPOINT, IMAGES, STATUS, Contract, ContainerSettings, read_contract, status_value
from .images import image_matches

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


def mutate_pod(pod: dict, config: InjectorConfig, namespace: str | None = None) -> Mutation:
    """Return the pod with the restart wrapper injected into the containers it opted in.

    `namespace` is the request's namespace, for pods whose metadata does not carry one yet.
    The input is never modified.
    """
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
    to_wrap = {}  # container index -> (command, args, settings)
    for index, container in enumerate(containers):
        if container.get("name") not in selected or _already_wrapped(container):
            continue
        settings = contract.settings_for(container["name"], prefix)
        resolved = resolve_entrypoint(container, settings)
        if resolved is None:
            warnings.append(
                f'container "{container["name"]}" has no command to restart; '
                f"set {prefix}/{ENTRYPOINT} (or {ENTRYPOINT}.{container['name']}) to its entrypoint"
            )
            continue
        to_wrap[index] = (resolved, settings)
    if not to_wrap:
        return _unchanged(pod, warnings) if warnings else Mutation(pod, SKIPPED)

    conflicts = _conflicts(spec, [containers[i] for i in to_wrap])
    if conflicts:
        return _unchanged(pod, warnings + conflicts)

    return Mutation(
        _inject(pod, to_wrap, config),
        INJECTED,
        tuple(_say(w) for w in warnings),
        tuple(containers[i]["name"] for i in to_wrap),
    )


def resolve_entrypoint(container: dict, settings: ContainerSettings) -> list[str] | None:
    """The program to run and re-run: the `entrypoint` annotation, else the container's `command`.

    This is the one place that decides; a registry lookup of the image's ENTRYPOINT/CMD
    slots in here as a further fallback without touching anything else.
    """
    if settings.entrypoint is not None:
        return list(settings.entrypoint)
    command = container.get("command")
    if isinstance(command, list) and command and all(isinstance(w, str) for w in command):
        return list(command)
    return None


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
    for index, (entrypoint, settings) in to_wrap.items():
        container = containers[index]
        original[container["name"]] = {"command": container.get("command"), "args": container.get("args")}
        mount = {"name": names.VOLUME, "mountPath": names.MOUNT_PATH, "readOnly": True}
        containers[index] = {
            **container,
            "command": wrapper_command(entrypoint, settings),
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
