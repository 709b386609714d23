"""The registry client against a real registry (Debian's docker-registry, distribution v2, on
loopback): authentication, deadlines, caching, plain HTTP only where listed, aliases."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import pytest

from tests.support.ports import free_port
from tests.support.registry import PASSWORD, USER, Registry
from tests.support.registry_lookups import lookup
from webhook.images import Credential, ImageConfig, LookupFailure
from webhook.pullsecrets import parse_docker_config
from webhook.registry import RegistryClient, Resolver


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_authenticated_registries_with_a_pull_secret(auth):
    registry = Registry(auth)
    try:
        registry.push_image("private/app", "v1", entrypoint=["/private"])
        image = f"{registry.host}/private/app:v1"
        anonymous = lookup(image)
        assert isinstance(anonymous, LookupFailure) and "needs credentials" in anonymous.reason
        secret = {".dockerconfigjson": base64.b64encode(json.dumps(
            {"auths": {registry.host: {"username": USER, "password": PASSWORD}}}).encode()).decode()}
        credentials = tuple(parse_docker_config("kubernetes.io/dockerconfigjson", secret))
        assert lookup(image, credentials=credentials) == ImageConfig(("/private",), ())
        wrong = (Credential(registry.host, USER, "wrong"),)
        assert isinstance(lookup(image, credentials=wrong), LookupFailure)
    finally:
        registry.stop()


def test_a_registry_that_never_answers_is_cut_off_at_the_deadline():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections into the backlog, never reads or answers
    try:
        started = time.monotonic()
        result = lookup(f"127.0.0.1:{silent.getsockname()[1]}/app:v1", deadline=0.5)
        elapsed = time.monotonic() - started
        assert result == LookupFailure("the registry did not answer within 0.5s")
        assert elapsed < 1.5
    finally:
        silent.close()


def test_cache_hits_make_no_request(registry):
    registry.push_image("cached", "v1", entrypoint=["/cached"])
    requests = []

    async def count(request):
        requests.append(request.url.path)

    async def run():
        client = RegistryClient(event_hooks={"request": [count]})
        resolver = Resolver(client, 5.0)
        try:
            first = await resolver.resolve([f"{registry.host}/cached:v1", f"{registry.host}/missing:v1"], "amd64")
            made = len(requests)
            second = await resolver.resolve([f"{registry.host}/cached:v1", f"{registry.host}/missing:v1"], "amd64")
            return first, made, second
        finally:
            await client.close()

    first, made, second = asyncio.run(run())
    assert made >= 3  # manifest + config for one, manifest for the other
    assert len(requests) == made  # the second round was answered from the cache, failures included
    assert first == second
    assert first[f"{registry.host}/cached:v1"] == ImageConfig(("/cached",), ())


def test_digest_references_are_cached_for_good(registry):
    digest = registry.push_image("pinned", "v1", entrypoint=["/pinned"])
    requests = []

    async def count(request):
        requests.append(request)

    async def run():
        client = RegistryClient(tag_ttl=0, event_hooks={"request": [count]})
        try:
            image = f"{registry.host}/pinned@{digest}"
            await client.image_config(image, "amd64")
            made = len(requests)
            await client.image_config(image, "amd64")
            return made
        finally:
            await client.close()

    made = asyncio.run(run())
    assert made == 2 and len(requests) == 2


def test_plain_http_only_for_listed_registries(registry):
    registry.push_image("strict", "v1", entrypoint=["/x"])
    result = lookup(f"{registry.host}/strict:v1", client=RegistryClient(insecure=()))
    assert isinstance(result, LookupFailure) and "cannot reach" in result.reason  # tried HTTPS, not HTTP


def test_a_registry_reached_under_another_name(registry):
    """As on kind: images say localhost:5001, the webhook's pod reaches the registry elsewhere."""
    registry.push_image("aliased", "v1", entrypoint=["/aliased"])
    named = f"localhost:{free_port()}"  # nothing listens there
    image = f"{named}/aliased:v1"
    assert isinstance(lookup(image), LookupFailure)
    assert lookup(image, client=RegistryClient(aliases={named: registry.host})) == ImageConfig(("/aliased",), ())
