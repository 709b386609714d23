"""The operator's settings for the injection, shared by `serve` and `inject` (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import __version__
from .contract import DEFAULT_PREFIX

DEFAULT_WRAPPER_IMAGE = f"restart-process/restart-wrapper:{__version__}"
ALWAYS_EXCLUDED_NAMESPACES = frozenset({"kube-system", "kube-public"})

# Names of the objects we add to a pod; a pod that already has them, not made by us, is left alone.
VOLUME = "restart-process"
INIT_CONTAINER = "restart-process-install"
MOUNT_PATH = "/restart-process"
WRAPPER_PATH = f"{MOUNT_PATH}/restart-wrapper"
# Where the wrapper image keeps the binary that `install` copies into the volume.
IMAGE_WRAPPER_PATH = "/restart-wrapper"
# A non-root user that exists in no image: the init container needs no identity, only to write
# into the emptyDir (which the kubelet creates world-writable).
INSTALL_UID = 65532


@dataclass(frozen=True)
class InjectorConfig:
    wrapper_image: str = DEFAULT_WRAPPER_IMAGE
    wrapper_image_pull_policy: str = "IfNotPresent"
    annotation_prefix: str = DEFAULT_PREFIX
    excluded_namespaces: frozenset[str] = ALWAYS_EXCLUDED_NAMESPACES
    volume_size_limit: str = "16Mi"
    init_resources: dict = field(
        default_factory=lambda: {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "32Mi"},
        }
    )

    def __post_init__(self):
        # kube-system and kube-public are never touched, whatever the operator lists.
        object.__setattr__(
            self, "excluded_namespaces", frozenset(self.excluded_namespaces) | ALWAYS_EXCLUDED_NAMESPACES
        )
