"""Reading an image's ENTRYPOINT and CMD from its registry (the OCI distribution API; a shell).

manifest (an index or manifest list is resolved to the wanted platform) -> config blob ->
`config.Entrypoint` / `config.Cmd`. Anonymous access, Bearer tokens after a `WWW-Authenticate`
challenge (Docker Hub, GHCR, distribution's token auth) and Basic auth. Plain HTTP only for the
registries the operator lists (`host_pattern`). Every manifest and config blob is checked
against its digest: the one asked for, or, for a manifest fetched by tag, the
Docker-Content-Digest the registry sent with it; a mismatch is a lookup failure.

Registries can be reached under another name (aliases), as a kind node reaches its local
registry as `localhost:5001` while pods reach it as `kind-registry:5000` (KEP-1755).

Lookups are cached: by manifest digest for good (a digest never changes), by tag for a short
TTL, and failures for a short TTL too. `Resolver.resolve` holds the whole lookup of a pod to
one deadline and never raises: what it could not read comes back as a `LookupFailure`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections import OrderedDict

import httpx

from .config import DEFAULT_INSECURE_REGISTRIES
from .images import Credential, ImageConfig, ImageReference, LookupFailure, path_from_env, same_registry

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
MAX_DOCUMENT = 4 * 1024 * 1024


class RegistryError(Exception):
    """One sentence for the warning."""


class RegistryClient:
    """Talks the distribution API; one instance per server, sharing connections and the cache."""

    def __init__(self, insecure: tuple[str, ...] = DEFAULT_INSECURE_REGISTRIES, aliases: dict[str, str] | None = None,
                 tag_ttl: float = 60.0,
                 failure_ttl: float = 30.0, cache_size: int = 512, transport: httpx.AsyncBaseTransport | None = None,
                 event_hooks: dict | None = None):
        self.insecure = insecure
        self._plain_http = [host_pattern(pattern) for pattern in insecure]
        # Registry as named in images -> where this process reaches it: `localhost:5001` on a
        # kind node is the local registry, but inside the webhook's pod it is the pod itself.
        self.aliases = dict(aliases or {})
        self.tag_ttl = tag_ttl
        self.failure_ttl = failure_ttl
        self.http = httpx.AsyncClient(follow_redirects=True, transport=transport, event_hooks=event_hooks or {},
                                      headers={"User-Agent": "restart-process-webhook"})
        self._by_digest: OrderedDict[tuple, ImageConfig] = OrderedDict()
        self._by_tag: dict[tuple, tuple[float, ImageConfig | LookupFailure]] = {}
        self._cache_size = cache_size
        self._tokens: dict[tuple, tuple[float, str]] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def image_config(self, image: str, arch: str, credentials: tuple[Credential, ...] = ()) -> ImageConfig:
        """Raises RegistryError (or a timeout) when the config cannot be read."""
        ref = ImageReference.parse(image)
        if not ref.is_valid():
            raise ValueError(f"not an image reference: {image}")
        # Keyed by where the registry is reached, so a new alias is not hidden by an old failure.
        key = (self._host(ref.registry), ref.repository, ref.reference, arch)
        if ref.reference.startswith("sha256:") and key in self._by_digest:
            self._by_digest.move_to_end(key)
            return self._by_digest[key]
        cached = self._by_tag.get(key)
        if cached and cached[0] > time.monotonic():
            if isinstance(cached[1], LookupFailure):
                raise RegistryError(cached[1].reason)
            return cached[1]
        try:
            config = await self._fetch(ref, arch, credentials)
        except RegistryError as error:
            self._by_tag[key] = (time.monotonic() + self.failure_ttl, LookupFailure(str(error)))
            raise
        self._by_tag[key] = (time.monotonic() + self.tag_ttl, config)
        return config

    # --- the protocol -----------------------------------------------------------------------

    async def _fetch(self, ref: ImageReference, arch: str, credentials: tuple[Credential, ...]) -> ImageConfig:
        credential = next((c for c in credentials if same_registry(c.registry, ref.registry)), None)
        manifest, digest = await self._manifest(ref, ref.reference, credential)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            chosen = _choose_platform(manifest.get("manifests") or [], arch)
            if chosen is None:
                raise RegistryError(f"{ref.registry}/{ref.repository} has no linux/{arch} image")
            digest = chosen
            cache_key = (self._host(ref.registry), ref.repository, digest, arch)
            if cache_key in self._by_digest:
                return self._by_digest[cache_key]
            manifest, _ = await self._manifest(ref, digest, credential)
        config_digest = (manifest.get("config") or {}).get("digest")
        if not isinstance(config_digest, str):
            raise RegistryError(f"{ref.registry}/{ref.repository}:{ref.reference} has no image config")
        blob = await self._get(ref, f"/v2/{ref.repository}/blobs/{config_digest}", credential, None)
        if not _matches_digest(blob.content, config_digest):
            raise RegistryError(f"{ref.registry} sent an image config for {ref.repository} that does not match its digest "
                                f"{_short(config_digest)}: refused (a broken registry or proxy, or tampering)")
        config = _parse_config(blob.content)
        self._remember((self._host(ref.registry), ref.repository, digest, arch), config)
        return config

    async def _manifest(self, ref: ImageReference, reference: str, credential) -> tuple[dict, str]:
        """The manifest and its digest, checked: against the digest asked for, or (by tag) against
        the Docker-Content-Digest the registry sent, whose word is otherwise the cache key for good."""
        response = await self._get(ref, f"/v2/{ref.repository}/manifests/{reference}", credential, ACCEPT)
        by_digest = ":" in reference
        digest = reference if by_digest else response.headers.get("Docker-Content-Digest")
        if digest:
            if not _matches_digest(response.content, digest):
                said = "" if by_digest else " its Docker-Content-Digest"
                raise RegistryError(f"{ref.registry} sent a manifest for {ref.repository}@{reference} that does not "
                                    f"match{said} {_short(digest)}: refused (a broken registry or proxy, or tampering)")
        else:
            digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        try:
            return json.loads(response.content), digest
        except json.JSONDecodeError:
            raise RegistryError(f"{ref.registry} sent a manifest that is not JSON") from None

    async def _get(self, ref: ImageReference, path: str, credential, accept: str | None) -> httpx.Response:
        host = self._host(ref.registry)
        scheme = "http" if self._is_insecure(host) else "https"
        url = f"{scheme}://{host}{path}"
        headers = {"Accept": accept} if accept else {}
        token = self._tokens.get((ref.registry, ref.repository, credential))
        if token and token[0] > time.monotonic():
            headers["Authorization"] = f"Bearer {token[1]}"
        response = await self._send(url, headers)
        if response.status_code == 401:
            headers["Authorization"] = await self._authorize(ref, response, credential)
            response = await self._send(url, headers)
        if response.status_code in (401, 403):
            hint = "" if credential else "; it needs credentials (imagePullSecrets, if the operator enabled them)"
            raise RegistryError(f"{ref.registry} refused access to {ref.repository}{hint}")
        if response.status_code == 404:
            raise RegistryError(f"{ref.registry}/{ref.repository}:{ref.reference} not found")
        if response.status_code != 200:
            raise RegistryError(f"{ref.registry} answered {response.status_code} for {ref.repository}")
        return response

    async def _send(self, url: str, headers: dict) -> httpx.Response:
        try:
            response = await self.http.get(url, headers=headers)
        except httpx.HTTPError as error:
            raise RegistryError(f"cannot reach {httpx.URL(url).netloc.decode()}: {type(error).__name__}") from None
        if len(response.content) > MAX_DOCUMENT:
            raise RegistryError(f"{httpx.URL(url).netloc.decode()} sent more than {MAX_DOCUMENT} bytes")
        return response

    async def _authorize(self, ref: ImageReference, challenge: httpx.Response, credential) -> str:
        scheme, params = _parse_challenge(challenge.headers.get("WWW-Authenticate", ""))
        basic = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode() if credential else None
        if scheme == "basic":
            if basic is None:
                raise RegistryError(f"{ref.registry} needs credentials (imagePullSecrets, if the operator enabled them)")
            return f"Basic {basic}"
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"{ref.registry} asked for an authentication we do not speak")
        query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        try:
            response = await self.http.get(params["realm"], params=query,
                                           headers={"Authorization": f"Basic {basic}"} if basic else {})
        except httpx.HTTPError as error:
            raise RegistryError(f"cannot reach the token service of {ref.registry}: {type(error).__name__}") from None
        if response.status_code in (401, 403):
            if basic is None:
                raise RegistryError(f"{ref.registry} needs credentials (imagePullSecrets, if the operator enabled them)")
            raise RegistryError(f"{ref.registry} refused the credentials from the pull secret")
        if response.status_code != 200:
            raise RegistryError(f"the token service of {ref.registry} answered {response.status_code}")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"the token service of {ref.registry} sent no token")
        lifetime = min(float(body.get("expires_in") or 60), 300.0)
        self._tokens[(ref.registry, ref.repository, credential)] = (time.monotonic() + lifetime - 5, token)
        return f"Bearer {token}"

    def _host(self, registry: str) -> str:
        """Where this process reaches a registry that images name `registry`."""
        return self.aliases.get(registry, registry)

    def _is_insecure(self, registry: str) -> bool:
        return plain_http(registry, self._plain_http)

    def _remember(self, key: tuple, config: ImageConfig) -> None:
        self._by_digest[key] = config
        self._by_digest.move_to_end(key)
        while len(self._by_digest) > self._cache_size:
            self._by_digest.popitem(last=False)


class Resolver:
    """All the lookups one pod needs, concurrently, within one deadline; never raises.

    `deadline` is the budget in seconds (--registry-timeout). `resolve(..., until=T)` ends at the
    monotonic time T instead, when the caller already spent part of that budget (on pull secrets):
    whatever is still running then -- a token request, a manifest, a config blob -- is cancelled.
    """

    def __init__(self, client: RegistryClient, deadline: float = 2.0):
        self.client = client
        self.deadline = deadline

    async def resolve(self, images: list[str], arch: str, credentials: tuple[Credential, ...] = (),
                      until: float | None = None) -> dict:
        remaining = self.deadline if until is None else max(0.0, until - time.monotonic())

        async def one(image: str):
            try:
                return await self.client.image_config(image, arch, credentials)
            except (RegistryError, ValueError) as error:  # ValueError: not an image reference
                return LookupFailure(str(error))

        tasks = {image: asyncio.ensure_future(one(image)) for image in dict.fromkeys(images)}
        done, pending = await asyncio.wait(tasks.values(), timeout=remaining)
        for task in pending:
            task.cancel()
        results = {}
        for image, task in tasks.items():
            if task in done and not task.cancelled() and task.exception() is None:
                results[image] = task.result()
            elif task in done and task.exception() is not None:
                results[image] = LookupFailure(f"lookup failed: {type(task.exception()).__name__}")
            else:
                results[image] = LookupFailure(f"the registry did not answer within {self.deadline:g}s")
        return results


# --- small pure helpers ------------------------------------------------------------------------


def plain_http(host: str, patterns) -> bool:
    """Whether `host` (`host[:port]`, as the registry is reached) matches one of the --insecure-registries
    `patterns` (strings, or `host_pattern`s)."""
    return any((host_pattern(p) if isinstance(p, str) else p).fullmatch(host) for p in patterns)


def host_pattern(pattern: str) -> re.Pattern:
    """An --insecure-registries pattern, matched against a whole `host[:port]`: `*` stands for any
    run of characters (`localhost:*`: any port), every other character for itself, letters in
    either case. Not a glob: brackets are literal, so `[::1]:*` is IPv6 loopback on any port
    (fnmatch would read `[::1]` as one character out of `:` and `1`, and match `1:5000`)."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)),
                      re.IGNORECASE | re.DOTALL)


def _choose_platform(manifests: list, arch: str) -> str | None:
    for entry in manifests:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch and isinstance(entry.get("digest"), str):
            return entry["digest"]
    return None


def _parse_challenge(header: str) -> tuple[str, dict]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _matches_digest(content: bytes, digest: str) -> bool:
    """Whether `content` hashes to `digest` (sha256 or sha512, as the OCI spec registers them)."""
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha512"):
        return False
    return hashlib.new(algorithm, content).hexdigest() == expected


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 19 else digest


def _parse_config(content: bytes) -> ImageConfig:
    try:
        config = (json.loads(content).get("config") or {})
    except (json.JSONDecodeError, AttributeError):
        raise RegistryError("the image config is not JSON") from None

    def words(value) -> tuple[str, ...]:
        return tuple(value) if isinstance(value, list) and all(isinstance(w, str) for w in value) else ()

    stop_signal = config.get("StopSignal")
    return ImageConfig(words(config.get("Entrypoint")), words(config.get("Cmd")),
                       stop_signal if isinstance(stop_signal, str) and stop_signal else None,
                       path_from_env(config.get("Env")))
