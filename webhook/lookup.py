"""Image configs for the plans that need them: the one impure step between `plan` and `apply` (a shell).

`serve` asks for one pod at a time, with that pod's pull secrets; `inject` asks for every pod of
its input at once. Both go through `ImageLookup`: configs given on the command line first
(`inject --image-configs`), then the registries, each image and architecture read once.
Never raises, and never takes longer than `--registry-timeout`: one deadline for each pod
(serve) or each run (inject), which reading the pod's pull secrets, token requests and manifest
and config fetches all share. Whatever could not be read in time becomes a LookupFailure, which
the mutation turns into a warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
        budget = self.settings.timeout
        deadline = time.monotonic() + budget  # the pod's one deadline: secrets, tokens, manifests, configs
        try:
            found = ()
            if self.credentials is not None and self.resolver is not None:
                try:
                    found = await asyncio.wait_for(self.credentials.for_pod(plan.pod, namespace, deadline), budget)
                except TimeoutError:
                    late = LookupFailure(f"the pod's pull secrets could not be read within {budget:g}s")
                    return {image: self.known.get(image, late) for image in plan.lookups}
            return await self._resolve(plan.lookups, self._arch(plan), found, deadline) or None
        except Exception as error:  # our bug, or the API server unreachable: warn, do not block
            log.warning("image lookup failed", exc_info=error)
            return {image: LookupFailure(f"lookup failed: {type(error).__name__}") for image in plan.lookups}

    async def for_plans(self, plans: list[Plan]) -> list[Configs | None]:
        """The configs of many pods' images, each (image, architecture) read once."""
        by_arch: dict[str, set[str]] = {}
        for plan in plans:
            by_arch.setdefault(self._arch(plan), set()).update(plan.lookups)
        deadline = time.monotonic() + self.settings.timeout  # one for the whole run, every architecture
        answers = await asyncio.gather(*(self._resolve(sorted(images), arch, (), deadline) for arch, images in by_arch.items()))
        found = dict(zip(by_arch, answers))
        results = []
        for plan in plans:
            answers = found.get(self._arch(plan), {})
            results.append({image: answers[image] for image in plan.lookups if image in answers} or None)
        return results

    async def _resolve(self, images, arch: str, credentials, deadline: float) -> Configs:
        configs: Configs = {image: self.known[image] for image in images if image in self.known}
        missing = [image for image in images if image not in configs]
        if missing and self.resolver is not None:
            configs.update(await self.resolver.resolve(missing, arch, credentials, until=deadline))
        return configs

    def _arch(self, plan: Plan) -> str:
        return plan.arch or self.settings.default_arch
