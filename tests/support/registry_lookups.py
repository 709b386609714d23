"""Small helpers for tests that read image configs from the test registry."""

from __future__ import annotations

import asyncio
import json

from webhook.registry import RegistryClient, Resolver

from .golden import image_configs
from .registry import Registry


def lookup(image: str, arch: str = "amd64", credentials=(), client: RegistryClient | None = None, deadline=5.0):
    async def run():
        own = client or RegistryClient()
        try:
            return (await Resolver(own, deadline).resolve([image], arch, credentials))[image]
        finally:
            if client is None:
                await own.close()
    return asyncio.run(run())


def push_golden_images(registry: Registry, case) -> dict[str, str]:
    """Push the images a golden case assumes; returns each one's name in the case -> in this registry."""
    pushed = {}
    for image, config in json.loads(image_configs(case).read_text()).items():
        repository = image.split("/", 1)[1].split(":")[0]
        registry.push_image(repository, "dev", entrypoint=config.get("Entrypoint"), cmd=config.get("Cmd"),
                            stop_signal=config.get("StopSignal"), env=config.get("Env"))
        pushed[image] = f"{registry.host}/{repository}:dev"
    return pushed
