"""Image configs for the plans that need them: the one impure step between `plan` and `apply` (a shell).

`serve` asks for one pod at a time, with that pod's pull secrets; `inject` asks for every pod of
its input at once. Both go through `ImageLookup`: configs given on the command line first
(`inject --image-configs`), then the registries, each image and architecture read once.
Never raises and never takes longer than the resolver's deadline (plus reading pull secrets,
itself bounded): whatever could not be read becomes a LookupFailure, which the mutation turns
into a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from .config import LookupSettings
from .images import ImageConfig, LookupFailure
from .plan import Plan

log = logging.getLogger("restart_process.lookup")

Configs = dict[str, ImageConfig | LookupFailure]


class ImageLookup:
    def __init__(self, settings: LookupSettings, known: Mapping[str, ImageConfig] | None = None, credentials=None):
        """`credentials`: a PullSecrets, or None to look up anonymously."""
        self.settings = settings
        self.known = dict(known or {})
        self.credentials = credentials
        self.registry = None
        self.resolver = None
        if settings.enabled:
            from .registry import RegistryClient, Resolver  # httpx only when lookups are on

            self.registry = RegistryClient(insecure=settings.insecure, aliases=settings.aliases)
            self.resolver = Resolver(self.registry, deadline=settings.timeout)

    async def close(self) -> None:
        if self.registry is not None:
            await self.registry.close()

    async def for_plan(self, plan: Plan, namespace: str | None = None) -> Configs | None:
        """The configs of one pod's images, read with that pod's pull secrets when enabled."""
        if not plan.lookups:
            return None
        try:
            found = ()
            if self.credentials is not None and self.resolver is not None:
                found = await asyncio.wait_for(self.credentials.for_pod(plan.pod, namespace), self.settings.timeout / 2)
            return await self._resolve(plan.lookups, self._arch(plan), found) or None
        except Exception as error:  # our bug, or the API server unreachable: warn, do not block
            log.warning("image lookup failed", exc_info=error)
            return {image: LookupFailure(f"lookup failed: {type(error).__name__}") for image in plan.lookups}

    async def for_plans(self, plans: list[Plan]) -> list[Configs | None]:
        """The configs of many pods' images, each (image, architecture) read once."""
        by_arch: dict[str, set[str]] = {}
        for plan in plans:
            by_arch.setdefault(self._arch(plan), set()).update(plan.lookups)
        found = {arch: await self._resolve(sorted(images), arch, ()) for arch, images in by_arch.items()}
        results = []
        for plan in plans:
            answers = found.get(self._arch(plan), {})
            results.append({image: answers[image] for image in plan.lookups if image in answers} or None)
        return results

    async def _resolve(self, images, arch: str, credentials) -> Configs:
        configs: Configs = {image: self.known[image] for image in images if image in self.known}
        missing = [image for image in images if image not in configs]
        if missing and self.resolver is not None:
            configs.update(await self.resolver.resolve(missing, arch, credentials))
        return configs

    def _arch(self, plan: Plan) -> str:
        return plan.arch or self.settings.default_arch
