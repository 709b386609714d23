"""Image configs for the containers of one pod that need them (a shell).

Glue between the pure mutation (which images), pull secrets (which credentials) and the
registry client (the answers), held to the resolver's deadline.
"""

from __future__ import annotations

import asyncio
import logging

from .config import InjectorConfig
from .images import LookupFailure
from .mutate import images_to_look_up, node_arch

log = logging.getLogger("restart_process.lookup")


class ImageLookup:
    """Image configs for the containers of one pod that need them, from their registries.

    Never raises and never takes longer than the resolver's deadline (plus reading pull
    secrets, itself bounded): whatever could not be read becomes a LookupFailure, which the
    mutation turns into a warning.
    """

    def __init__(self, config: InjectorConfig, resolver, default_arch: str, credentials=None):
        self.config = config
        self.resolver = resolver
        self.default_arch = default_arch
        self.credentials = credentials

    async def configs_for(self, pod: dict, namespace: str | None) -> dict | None:
        images = images_to_look_up(pod, self.config, namespace)
        if not images:
            return None
        try:
            found = ()
            if self.credentials is not None:
                found = await asyncio.wait_for(self.credentials.for_pod(pod, namespace), self.resolver.deadline / 2)
            return await self.resolver.resolve(images, node_arch(pod) or self.default_arch, found)
        except Exception as error:  # our bug, or the API server unreachable: warn, do not block
            log.warning("image lookup failed", exc_info=error)
            return {image: LookupFailure(f"lookup failed: {type(error).__name__}") for image in images}
