"""What program a wrapped container runs: Kubernetes' command/args rules, with the image's config (pure).

In order: the `entrypoint` annotation; the container's `command`; the image's ENTRYPOINT/CMD.
Kubernetes ignores the image's ENTRYPOINT *and* CMD once a container sets `command`, so with
the image config: program = ENTRYPOINT, and args = the container's args, else the image's CMD
(set explicitly, or it would be lost). An empty ENTRYPOINT makes the args the program.

Strings taken from the image config are escaped on the way into the pod spec: the kubelet
expands `$(VAR)` in `command` and `args` and turns `$$` into `$`, which the image's own
ENTRYPOINT/CMD never went through (`sh -c "echo pid=$$"` would print `pid=$`). Each `$`
becomes `$$`, so the program gets exactly the strings the image holds. The `entrypoint`
annotation is not escaped: like `command`, it is written for the pod spec, `$(VAR)` included.
"""

from __future__ import annotations

from typing import NamedTuple

from .contract import ContainerSettings
from .images import ImageConfig, LookupFailure


class Resolved(NamedTuple):
    program: list[str]
    args: list[str] | None  # None: keep the container's own args (or none)


class Unresolvable(NamedTuple):
    reason: str  # completes "container "app" ..."


def resolve_entrypoint(container: dict, settings: ContainerSettings,
                       image: ImageConfig | LookupFailure | None = None) -> Resolved | Unresolvable:
    """`image` is the registry's answer for the container's image, or None when none was asked."""
    if settings.entrypoint is not None:
        return Resolved(list(settings.entrypoint), None)
    if has_command(container):
        return Resolved(list(container["command"]), None)
    if image is None:
        return Unresolvable("has no command to restart")
    if isinstance(image, LookupFailure):
        return Unresolvable(f"has no command and its image config could not be read ({image.reason})")
    if container.get("args"):
        return Resolved(_escaped(image.entrypoint), None)
    if not image.entrypoint and not image.cmd:
        return Unresolvable("has no command, and its image has no ENTRYPOINT or CMD")
    return Resolved(_escaped(image.entrypoint), _escaped(image.cmd) if image.cmd else None)


def _escaped(words: tuple[str, ...]) -> list[str]:
    return [word.replace("$", "$$") for word in words]


def has_command(container: dict) -> bool:
    command = container.get("command")
    return isinstance(command, list) and bool(command) and all(isinstance(w, str) for w in command)
