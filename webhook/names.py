"""The names of everything the injection adds to a pod, and how to tell that a thing is ours (pure).

A pod that already holds an object under one of these names that we did not make is left alone
with a warning; one we made (an earlier injection, a reinvocation) is reused.
"""

from __future__ import annotations

# The annotation (after the prefix) that records an injection: its presence makes injection idempotent.
STATUS = "injected"

# The emptyDir the init container copies the wrapper into, mounted read-only where it runs.
VOLUME = "restart-process"
INIT_CONTAINER = "restart-process-install"
MOUNT_PATH = "/restart-process"
WRAPPER_PATH = f"{MOUNT_PATH}/restart-wrapper"
# Where the wrapper image keeps the binary that `install` copies into the volume.
IMAGE_WRAPPER_PATH = "/restart-wrapper"
# A non-root user that exists in no image: the init container needs no identity, only to write
# into the emptyDir (which the kubelet creates world-writable).
INSTALL_UID = 65532


def is_our_volume(volume: dict) -> bool:
    return volume.get("name") == VOLUME and set(volume) == {"name", "emptyDir"}


def is_our_init_container(container: dict) -> bool:
    command = container.get("command") or []
    return container.get("name") == INIT_CONTAINER and command[:2] == [IMAGE_WRAPPER_PATH, "install"]


def is_wrapped(container: dict) -> bool:
    command = container.get("command")
    return isinstance(command, list) and bool(command) and command[0] == WRAPPER_PATH
