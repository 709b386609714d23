"""Putting the sync tools on a wrapped container's PATH (pure).

Live update copies files with `tar` and deletes them with `rm`, run in the container through the
exec API (Tilt: `tar -C / -x -f -` and `rm -rf`; `kubectl cp`: `test -d DEST`, `tar -xmf -`). The
runtime finds them through the PATH of the container's environment, which every exec inherits.
The wrapper brings all three (`names.TOOLS_DIR`), so images with no shell and no tar work too.

The directory is appended, never prepended: an image's own tar still wins. And the PATH the
program sees is never guessed: the directory is appended to the container's own `env` PATH, or
to the image's (from its config; the runtime's default when the image sets none). When neither is
known, PATH is left alone and the caller warns how to fix it.
"""

from __future__ import annotations

from typing import NamedTuple

from .contract import ContainerSettings
from .images import ImageConfig, LookupFailure
from .names import TOOLS_DIR

# What containerd (like Docker) gives a container whose image sets no PATH; the node tests
# check it against the real containerd.
RUNTIME_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PathChange(NamedTuple):
    """The container's env PATH after the change: `index` is the env entry whose value it
    replaces, None for a new entry at the end; `before` is that entry's value (None: none)."""

    value: str
    index: int | None
    before: str | None


class PathUnknown(NamedTuple):
    reason: str  # why the PATH the program sees is unknown


def wants_image_path(container: dict, settings: ContainerSettings) -> bool:
    """Whether the image's PATH is needed: tools wanted, and the container says nothing of PATH."""
    return settings.sync_tools is not False and _declared_path(container) is None and not container.get("envFrom")


def tools_on_path(container: dict, settings: ContainerSettings,
                  image: ImageConfig | LookupFailure | None) -> PathChange | PathUnknown | None:
    """How PATH changes so that the tools are found (None: no change needed or wanted). `image` is
    the registry's answer for the container's image, or None when none was asked."""
    if settings.sync_tools is False:
        return None
    declared = _declared_path(container)
    if declared is not None:
        index, entry = declared
        value = entry.get("value")
        if "valueFrom" in entry or not isinstance(value, str):
            return PathUnknown("its env takes PATH from valueFrom")
        # Already there (a spec copied from an injected pod): the same PATH again.
        if TOOLS_DIR in value.split(":"):
            return None
        return PathChange(_appended(value), index, value)
    if container.get("envFrom"):
        return PathUnknown("its envFrom may set PATH")
    if image is None:
        return PathUnknown("no PATH in its env, and no registry lookup was made")
    if isinstance(image, LookupFailure):
        return PathUnknown(f"no PATH in its env, and its image config could not be read: {image.reason}")
    # The kubelet expands $(VAR) and $$ in env values; the image's PATH never went through that.
    image_path = RUNTIME_DEFAULT_PATH if image.path is None else image.path.replace("$", "$$")
    return PathChange(_appended(image_path), None, None)


def _declared_path(container: dict) -> tuple[int, dict] | None:
    """The container's own PATH entry: the last one, which is the one the kubelet uses."""
    found = None
    for index, entry in enumerate(container.get("env") or []):
        if entry.get("name") == "PATH":
            found = index, entry
    return found


def _appended(path: str) -> str:
    # An empty PATH has no directories to keep, and a leading ':' would add the working directory.
    return f"{path}:{TOOLS_DIR}" if path else TOOLS_DIR
