"""The registry client against a real registry (Debian's docker-registry, distribution v2, on
loopback): authentication, deadlines, caching, plain HTTP only where listed, aliases."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid

import pytest

import hashlib

from tests.support.ports import free_port
from tests.support.registry import OCI_MANIFEST, PASSWORD, USER, Registry
from tests.support.registry_lookups import lookup
from webhook.config import DEFAULT_INSECURE_REGISTRIES
from webhook.images import Credential, ImageConfig, LookupFailure
from webhook.pullsecrets import parse_docker_config
from webhook.registry import RegistryClient, Resolver, plain_http


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


def test_ipv6_loopback_is_reached_over_plain_http_by_default():
    """`[::1]:*` in the defaults is IPv6 loopback on any port (as a glob, `[::1]` was a character class)."""
    registry = Registry(address="[::1]")
    try:
        registry.push_image("six", "v1", entrypoint=["/six"])
        assert lookup(f"{registry.host}/six:v1") == ImageConfig(("/six",), ())
        # A pattern of the operator's own, brackets and all, is taken literally too.
        own = RegistryClient(insecure=(f"[::1]:{registry.port}",))
        assert lookup(f"{registry.host}/six:v1", client=own) == ImageConfig(("/six",), ())
        other_port = RegistryClient(insecure=(f"[::1]:{registry.port + 1}",))
        refused = lookup(f"{registry.host}/six:v1", client=other_port)
        assert isinstance(refused, LookupFailure) and "cannot reach" in refused.reason  # HTTPS, not HTTP
    finally:
        registry.stop()


@pytest.mark.parametrize("host, plain", [
    ("[::1]:5000", True), ("[::1]:1", True), ("1:5000", False), (":5000", False), ("[::2]:5000", False),
    ("localhost", True), ("localhost:5001", True), ("LocalHost:5001", True), ("127.0.0.1:5000", True),
    ("127.0.0.10:5000", False), ("kind-registry:5000", True), ("kind-registry", False),
    ("registry.localhost:5000", True), ("registryxlocalhost:5000", False), ("gcr.io", False),
    ("localhost.evil.example:5000", False),
])
def test_the_default_plain_http_patterns(host, plain):
    assert plain_http(host, DEFAULT_INSECURE_REGISTRIES) is plain


@pytest.mark.parametrize("pattern, host, plain", [
    ("[fd00::1]:5000", "[fd00::1]:5000", True), ("[fd00::1]:5000", "f:5000", False),
    ("[fd00::1]:*", "[fd00::1]:443", True), ("[a-z]:*", "q:5000", False), ("[a-z]:*", "[a-z]:5000", True),
    ("reg?:5000", "reg1:5000", False), ("reg?:5000", "reg?:5000", True), ("*.internal:*", "r.internal:5000", True),
    ("*.internal:*", "r.internal.example:5000", False), ("my-registry:*", "my-registry.evil:5000", False),
    ("My-Registry:5000", "my-registry:5000", True),
])
def test_operator_patterns_only_know_the_star(pattern, host, plain):
    assert plain_http(host, (pattern,)) is plain


def test_a_manifest_that_does_not_match_its_digest_is_refused(registry):
    """distribution serves what its storage holds and names it by the digest it stored it under;
    storage that was altered (a bad disk, a tampered backend) makes it lie. The lookup must notice.
    (Storage is content-addressed and shared by the module's tests: the contents here are unique.)"""
    unique = uuid.uuid4().hex
    good = registry.push_image("tampered", "good", entrypoint=["/good", unique])
    evil = registry.push_image("tampered", "evil", entrypoint=["/evil", unique])
    evil_manifest = registry.http.get(f"/v2/tampered/manifests/{evil}", headers={"Accept": OCI_MANIFEST}).content
    registry.tamper(good, evil_manifest)
    answer = registry.http.get("/v2/tampered/manifests/good", headers={"Accept": OCI_MANIFEST})
    assert answer.headers["Docker-Content-Digest"] == good  # the registry really lies:
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == evil  # these are evil's bytes

    by_tag = lookup(f"{registry.host}/tampered:good")
    assert isinstance(by_tag, LookupFailure), by_tag
    assert by_tag.reason == (f"{registry.host} sent a manifest for tampered@good that does not match its "
                             f"Docker-Content-Digest {good[:19]}…: refused (a broken registry or proxy, or tampering)")
    by_digest = lookup(f"{registry.host}/tampered@{good}")
    assert isinstance(by_digest, LookupFailure) and f"that does not match {good[:19]}…" in by_digest.reason
    assert lookup(f"{registry.host}/tampered:evil") == ImageConfig(("/evil", unique), ())  # honest ones still read


def test_a_config_blob_that_does_not_match_its_digest_is_refused(registry):
    registry.push_image("tampered-config", "v1", entrypoint=["/good", uuid.uuid4().hex])
    manifest = registry.http.get("/v2/tampered-config/manifests/v1", headers={"Accept": OCI_MANIFEST}).json()
    config = manifest["config"]["digest"]
    registry.tamper(config, b'{"config": {"Entrypoint": ["/evil"]}}')
    result = lookup(f"{registry.host}/tampered-config:v1")
    assert isinstance(result, LookupFailure) and "sent an image config for tampered-config that does not match" in result.reason
