"""Putting the sync tools on a wrapped container's PATH (pure).

Live update copies files with `tar` and deletes them with `rm`, run in the container through the
exec API (Tilt: `tar -C / -x -f -` and `rm -rf`; `kubectl cp`: `test -d DEST`, `tar -xmf -`). The
runtime finds them through the PATH of the container's environment, which every exec inherits.
The wrapper brings all three (`names.TOOLS_DIR`), so images with no shell and no tar work too.

Where the directory goes depends on restart-on-sync (the caller's `first`):
- Without it, last (appended): an image's own tar still wins, and nothing changes for the program.
- With it, first (prepended): the sync must run *our* tar and rm, since they are what tells the
  wrapper that a sync finished (into $RESTART_WRAPPER_SYNC_FILE), so that it restarts the program.
  The program itself is not affected: the wrapper moves that first entry to the end of the PATH it
  gives the program, so only the processes exec'd into the container (Tilt's, kubectl's) see our
  tools first. And the image's own tools still serve them: ours hand what they do not implement
  (tar -c, -z, rm -i, ...) to the next tar, rm or test on PATH, the image's.
A PATH that already holds the directory keeps it, moved to the front when it must come first.
The caller decides `first`; this module only places the directory.

The PATH the program sees is never guessed: the directory goes on the container's own `env` PATH,
or on the image's (from its config; the runtime's default when the image sets none). When neither
is known, PATH is left alone and the caller warns how to fix it.
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


def tools_on_path(container: dict, settings: ContainerSettings, image: ImageConfig | LookupFailure | None,
                  first: bool = False) -> PathChange | PathUnknown | None:
    """How PATH changes so that the tools are found, last or `first` (None: no change wanted, or
    none needed: the tools are already where they should be). `image` is the registry's answer for
    the container's image, or None when none was asked."""
    if settings.sync_tools is False:
        return None
    place = _prepended if first else _appended
    declared = _declared_path(container)
    if declared is not None:
        index, entry = declared
        value = entry.get("value")
        if "valueFrom" in entry or not isinstance(value, str):
            return PathUnknown("its env takes PATH from valueFrom")
        # Already where it goes (a spec copied from an injected pod): the same PATH again.
        entries = value.split(":")
        if (entries[0] == TOOLS_DIR) if first else (TOOLS_DIR in entries):
            return None
        return PathChange(place(value), index, value)
    if container.get("envFrom"):
        return PathUnknown("its envFrom may set PATH")
    if image is None:
        return PathUnknown("no PATH in its env, and no registry lookup was made")
    if isinstance(image, LookupFailure):
        return PathUnknown(f"no PATH in its env, and its image config could not be read: {image.reason}")
    # The kubelet expands $(VAR) and $$ in env values; the image's PATH never went through that.
    image_path = RUNTIME_DEFAULT_PATH if image.path is None else image.path.replace("$", "$$")
    return PathChange(place(image_path), None, None)


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


def _prepended(path: str) -> str:
    """The tools first. An entry that already is the tools directory moves to the front, so that
    the program (which the wrapper gives this PATH with its first entry moved to the end) sees the
    PATH it was given; but only in a PATH without `$`: there, removing an entry could cut into a
    $(VAR) reference the kubelet expands (a variable's name may hold ':'), so it stays, unused."""
    if not path:
        return TOOLS_DIR  # as in _appended: a trailing ':' would add the working directory
    if "$" in path:
        return f"{TOOLS_DIR}:{path}"
    rest = [entry for entry in path.split(":") if entry != TOOLS_DIR]  # an empty entry (the working directory) stays
    return ":".join([TOOLS_DIR, *rest]) if rest else TOOLS_DIR
