"""The names of everything the injection adds to a pod, and how to tell that a thing is ours (pure).

A pod that already holds an object under one of these names that we did not make is left alone
with a warning; one we made (an earlier injection, a reinvocation) is reused.
"""

from __future__ import annotations

# The annotation (after the prefix) that records an injection: its presence makes injection idempotent.
STATUS = "injected"

# The wrapper's volume, mounted read-only where it runs: an emptyDir the init container copies the
# wrapper into, or (delivery `image-volume`) the wrapper image itself, whose root holds the same
# files (restart-wrapper, bin/tar, bin/rm, bin/test), so the paths below hold either way.
VOLUME = "restart-process"
INIT_CONTAINER = "restart-process-install"
MOUNT_PATH = "/restart-process"
WRAPPER_PATH = f"{MOUNT_PATH}/restart-wrapper"
# `install` also lays down tar, rm and test here, links to the wrapper (one multi-call binary), for
# live update into images that have neither; the webhook puts this directory on PATH (synctools.py).
TOOLS_DIR = f"{MOUNT_PATH}/bin"
# Where the wrapper image keeps the binary that `install` copies into the volume.
IMAGE_WRAPPER_PATH = "/restart-wrapper"
# A non-root user that exists in no image: the init container needs no identity, only to write
# into the emptyDir (which the kubelet creates world-writable).
INSTALL_UID = 65532

# A small writable emptyDir for the restart files, so `restart-wrapper trigger` works in every
# container: images without /tmp (FROM scratch), readOnlyRootFilesystem, any uid (the kubelet
# creates emptyDirs world-writable). One file per wrapped container, named after it; the
# wrapper watches it besides /tmp/.restart-proc, and `trigger` finds it through the env variable.
TRIGGER_VOLUME = "restart-process-trigger"
TRIGGER_DIR = "/run/restart-process"
TRIGGER_ENV = "RESTART_WRAPPER_RESTART_FILE"
TRIGGER_VOLUME_SIZE = "1Mi"
# Where Tilt's restart_process extension (and the wrapper, by default) expect the restart file.
DEFAULT_RESTART_FILE = "/tmp/.restart-proc"
# restart-on-sync: the sync tools (tar, rm) report a finished sync into the file this variable
# names, beside the restart file; the wrapper watches it (`--sync-file`) and hides the variable
# from the program, so only exec'd processes (the sync) report.
SYNC_ENV = "RESTART_WRAPPER_SYNC_FILE"


def trigger_file(container: str) -> str:
    return f"{TRIGGER_DIR}/{container}.restart"


def sync_file(container: str) -> str:
    return f"{TRIGGER_DIR}/{container}.sync"


def is_our_volume(volume: dict) -> bool:
    if volume.get("name") == VOLUME and is_image_volume(volume):
        return True
    return volume.get("name") in (VOLUME, TRIGGER_VOLUME) and set(volume) == {"name", "emptyDir"}


def is_image_volume(volume: dict) -> bool:
    """Shaped as the image volume an injection adds (any reference: a spec copied from a pod
    injected with an older wrapper image is still ours)."""
    image = volume.get("image")
    return set(volume) == {"name", "image"} and isinstance(image, dict) and isinstance(image.get("reference"), str)


def is_our_init_container(container: dict) -> bool:
    command = container.get("command") or []
    return container.get("name") == INIT_CONTAINER and command[:2] == [IMAGE_WRAPPER_PATH, "install"]


def is_wrapped(container: dict) -> bool:
    command = container.get("command")
    return isinstance(command, list) and bool(command) and command[0] == WRAPPER_PATH
