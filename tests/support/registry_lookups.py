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


def push_golden_image(registry: Registry, case) -> str:
    """Push the image a golden case assumes, and return its name in this registry."""
    (image, config), = json.loads(image_configs(case).read_text()).items()
    repository = image.split("/", 1)[1].split(":")[0]
    registry.push_image(repository, "dev", entrypoint=config["Entrypoint"], cmd=config["Cmd"])
    return f"{registry.host}/{repository}:dev"
