"""Images: references, the `images` matching rule, and the types the core and the registry share.

Pure, and free of HTTP: the mutation, the pull-secret reader and the registry client all import
from here, so none of them pulls in another's dependencies.

`foo-image` matches `localhost:5000/foo-image:tilt-1a2b` and `gcr.io/p/foo-image@sha256:...`,
but not `foo-image-two` nor `foo-image/sub`: the pattern's path segments must equal the
trailing segments of the image's repository, with tag and digest ignored. A pattern that
names a registry host (`localhost:5000/foo`) must match that host as well. This mirrors
the first argument of Tilt's `docker_build_with_restart('foo-image', ...)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", DOCKER_HUB)
_REPOSITORY = re.compile(r"[a-z0-9]+([._/-][a-z0-9]+)*")


@dataclass(frozen=True)
class ImageReference:
    """An image reference as written: `[host/]path[:tag][@digest]`.

    `host` is None when the reference names no registry (Docker Hub is then implied);
    `registry` and `repository` give the normalised names a registry client talks to.
    """

    host: str | None
    path: tuple[str, ...]
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        name, _, digest = text.partition("@")
        tag = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:  # a tag, not a host:port
            name, tag = name[:colon], name[colon + 1 :]
        first, _, rest = name.partition("/")
        # The Docker rule: the first segment is a host when it has a dot or a port, or is localhost.
        if rest and ("." in first or ":" in first or first == "localhost"):
            return cls(first, tuple(rest.split("/")), tag, digest or None)
        return cls(None, tuple(name.split("/")), tag, digest or None)

    @property
    def registry(self) -> str:
        """The registry to talk to; Docker Hub's names all mean registry-1.docker.io."""
        return DOCKER_HUB if self.host is None or self.host in _DOCKER_HUB_NAMES else self.host

    @property
    def repository(self) -> str:
        """The repository on that registry; Docker Hub's official images live under library/."""
        path = "/".join(self.path)
        return f"library/{path}" if self.registry == DOCKER_HUB and len(self.path) == 1 else path

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag, else latest."""
        return self.digest or self.tag or "latest"

    def is_valid(self) -> bool:
        return bool(_REPOSITORY.fullmatch(self.repository))


def image_matches(image: str, pattern: str) -> bool:
    want = ImageReference.parse(pattern)
    have = ImageReference.parse(image)
    if want.host is not None and want.host != have.host:
        return False
    n = len(want.path)
    return n <= len(have.path) and have.path[-n:] == want.path


def same_registry(configured: str, registry: str) -> bool:
    """Whether a pull secret's registry key (`https://index.docker.io/v1/`, `reg:5000`) names `registry`."""
    host = re.sub(r"^https?://", "", configured).split("/", 1)[0]
    return (DOCKER_HUB if host in _DOCKER_HUB_NAMES else host) == registry


@dataclass(frozen=True)
class ImageConfig:
    """The part of an image's config that Kubernetes merges with a container's command/args."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    stop_signal: str | None = None  # as the image says it (SIGQUIT, 3, RTMIN+3)
    path: str | None = None  # PATH from the image's Env; None when the image sets none


def path_from_env(env: object) -> str | None:
    """The PATH an image config's Env list sets (the last one wins, as in the runtimes), if any."""
    found = None
    if isinstance(env, list):
        for entry in env:
            if isinstance(entry, str) and entry.startswith("PATH="):
                found = entry[len("PATH="):]
    return found


@dataclass(frozen=True)
class LookupFailure:
    """Why an image's config could not be read; ends up in the warning."""

    reason: str


@dataclass(frozen=True)
class Credential:
    """A registry login from a pull secret."""

    registry: str
    username: str
    password: str
