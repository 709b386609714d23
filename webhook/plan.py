"""Phase one of the mutation: decide what to do with a pod, before any image is looked up (pure).

should we look at this pod at all -> read the contract -> check the pod and the annotations ->
choose the containers. The result is a `Plan`: either final (skipped, or invalid with the
warnings that say why) or a list of candidates, with the images whose config (ENTRYPOINT/CMD, or
PATH for the sync tools) the second phase (`mutate.apply`) will need. The shells look those
images up in between, so the core never does I/O and every pod is planned exactly once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from .config import InjectorConfig
from .contract import CONTAINERS, IMAGES, Contract, ContainerSettings, read_contract
from .delivery import Delivery
from .entrypoint import has_command
from .images import image_matches
from .names import is_wrapped
from .synctools import wants_image_path

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


class Outcome(StrEnum):
    """What an admission did, for the response, the log line and the metrics."""

    INJECTED = "injected"
    SKIPPED = "skipped"  # not for us: no opt-in, excluded, already injected, nothing to wrap
    INVALID = "invalid"  # opted in, but the annotations or the pod are wrong: unchanged, with warnings
    ERROR = "error"  # our own bug: admitted unchanged, with a warning (fail open)


class Candidate(NamedTuple):
    """A container the annotations select, with its merged settings."""

    field: str  # "containers", or "initContainers" for a native sidecar
    index: int  # in that list
    container: dict
    settings: ContainerSettings


@dataclass(frozen=True)
class Plan:
    pod: dict
    final: Outcome | None = None  # SKIPPED or INVALID: the decision is made, nothing to apply
    # What to tell the user, not yet worded as warnings (`mutate.apply` does that): for an
    # INVALID plan the problems, otherwise notes such as an `images` pattern matching nothing.
    messages: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    arch: str | None = None  # the CPU architecture the pod asks for, if it asks
    namespace: str | None = None  # the pod's (or the request's), whose Pod Security level the delivery may need
    delivery: Delivery | None = None  # the pod's restart-process.dev/delivery; None: the server's setting

    @functools.cached_property
    def lookups(self) -> tuple[str, ...]:
        """Images whose config is needed: for ENTRYPOINT/CMD (candidates with no `entrypoint` and no
        `command`), or for PATH (candidates that want the sync tools and set no PATH themselves)."""
        return tuple(dict.fromkeys(
            c.container["image"] for c in self.candidates
            if ((c.settings.entrypoint is None and not has_command(c.container))
                or wants_image_path(c.container, c.settings))
            and isinstance(c.container.get("image"), str) and c.container["image"]
        ))


def plan_pod(pod: dict, config: InjectorConfig, namespace: str | None = None) -> Plan:
    """`namespace` is the request's, for pods whose metadata does not carry one yet."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {} if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return Plan(pod, Outcome.SKIPPED)  # no readable annotations: cannot have opted in
    spec = pod.get("spec") or {}
    namespace = metadata.get("namespace") or namespace
    if namespace in config.excluded_namespaces or MIRROR_POD_ANNOTATION in annotations or _is_windows(spec):
        return Plan(pod, Outcome.SKIPPED)

    prefix = config.annotation_prefix
    contract, problems = read_contract(annotations, prefix)
    if not contract.opted_in or contract.disabled or contract.already_injected:
        return Plan(pod, Outcome.SKIPPED)

    malformed = _malformed(spec)
    if malformed:
        return Plan(pod, Outcome.INVALID, (malformed,))
    problems += _check_container_references(contract, spec, prefix)
    if problems:
        return Plan(pod, Outcome.INVALID, tuple(problems))

    selected, warnings = _select(contract, spec, prefix)
    candidates = tuple(
        Candidate(field, index, container, contract.settings_for(container["name"]))
        for field in ("initContainers", "containers")
        for index, container in enumerate(spec.get(field) or [])
        if container.get("name") in selected and not is_wrapped(container)
        and (field == "containers" or is_sidecar(container))
    )
    return Plan(pod, None, tuple(warnings), candidates, _node_arch(spec), namespace, contract.delivery)


def is_sidecar(container: dict) -> bool:
    """A native sidecar (KEP-753): an init container that keeps running beside the app."""
    return container.get("restartPolicy") == "Always"


# --- checks --------------------------------------------------------------------------------


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
    for container in [*spec["containers"], *(spec.get("initContainers") or [])]:
        for field in ("volumeMounts", "env"):
            items = container.get(field) or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                return f'container "{container["name"]}": {field} is not a list of mappings'
        for field in ("livenessProbe", "lifecycle"):
            if not isinstance(container.get(field) or {}, dict):
                return f'container "{container["name"]}": {field} is not a mapping'
    return None


def _check_container_references(contract: Contract, spec: dict, prefix: str) -> list[str]:
    """Every container named in `containers` or a `<key>.<name>` setting must exist and be selected."""
    inits = spec.get("initContainers") or []
    app = {c["name"] for c in spec["containers"]} | {c["name"] for c in inits if is_sidecar(c)}
    init = {c["name"] for c in inits if not is_sidecar(c)}
    problems = []

    def unknown(key: str, name: str) -> str:
        if name in init:
            return (f'{prefix}/{key}: "{name}" is an init container that runs to completion; only containers '
                    f"and sidecars (initContainers with restartPolicy: Always) can be wrapped")
        return f'{prefix}/{key}: no container named "{name}"; containers are {", ".join(sorted(app))}'

    for name in contract.container_names:
        if name not in app:
            problems.append(unknown(CONTAINERS, name))
    for name, settings in contract.container_settings.items():
        for field in settings:
            key = field.replace("_", "-")  # back to the annotation's spelling
            if name not in app:
                problems.append(unknown(f"{key}.{name}", name))
            elif contract.container_names or contract.image_patterns:
                chosen = name in contract.container_names or any(
                    image_matches(str(c.get("image", "")), p)
                    for c in [*spec["containers"], *inits]
                    if c.get("name") == name
                    for p in contract.image_patterns
                )
                if not chosen:
                    problems.append(
                        f'{prefix}/{key}.{name}: container "{name}" is not selected; add it to {prefix}/{CONTAINERS}'
                    )
    return problems


def _select(contract: Contract, spec: dict, prefix: str) -> tuple[set[str], list[str]]:
    """Names of the containers to wrap. Opting in without a selection means spec.containers;
    sidecars are wrapped only when named or matched, as other tools inject sidecars of their own."""
    if contract.every_container:
        return {c.get("name") for c in spec["containers"]}, []
    selected = set(contract.container_names)
    warnings = []
    choosable = [*spec["containers"], *(c for c in spec.get("initContainers") or [] if is_sidecar(c))]
    for pattern in contract.image_patterns:
        matching = {c.get("name") for c in choosable if image_matches(str(c.get("image", "")), pattern)}
        if not matching:
            warnings.append(f'{prefix}/{IMAGES}: no container image matches "{pattern}"')
        selected |= matching
    return selected, warnings


def _is_windows(spec: object) -> bool:
    if not isinstance(spec, dict):
        return False
    selector = spec.get("nodeSelector") or {}
    os_field = spec.get("os") or {}
    return (isinstance(selector, dict) and selector.get("kubernetes.io/os") == "windows") or (
        isinstance(os_field, dict) and os_field.get("name") == "windows"
    )


def _node_arch(spec: dict) -> str | None:
    """nodeSelector kubernetes.io/arch: the image index entry to read the config of."""
    selector = spec.get("nodeSelector")
    arch = selector.get("kubernetes.io/arch") if isinstance(selector, dict) else None
    return arch if isinstance(arch, str) else None
