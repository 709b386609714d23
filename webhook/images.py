"""Image references and the `images` annotation's matching rule (pure).

`foo-image` matches `localhost:5000/foo-image:tilt-1a2b` and `gcr.io/p/foo-image@sha256:...`,
but not `foo-image-two` nor `foo-image/sub`: the pattern's path segments must equal the
trailing segments of the image's repository, with tag and digest ignored. A pattern that
names a registry host (`localhost:5000/foo`) must match that host as well. This mirrors
the first argument of Tilt's `docker_build_with_restart('foo-image', ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class ImageConfig:
    """The part of an image's config that Kubernetes merges with a container's command/args."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


@dataclass(frozen=True)
class LookupFailure:
    """Why an image's config could not be read; ends up in the warning."""

    reason: str


class Repository(NamedTuple):
    host: str | None
    path: tuple[str, ...]


def parse_repository(reference: str) -> Repository:
    """Split an image reference into registry host and repository path segments."""
    name = reference.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:  # a tag, not a host:port
        name = name[:colon]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return Repository(first, tuple(rest.split("/")))
    return Repository(None, tuple(name.split("/")))


def image_matches(image: str, pattern: str) -> bool:
    want = parse_repository(pattern)
    have = parse_repository(image)
    if want.host is not None and want.host != have.host:
        return False
    n = len(want.path)
    return n <= len(have.path) and have.path[-n:] == want.path
