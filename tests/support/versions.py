"""The versions hack/versions.env pins, for tests that check what was built."""

from __future__ import annotations

import functools

from .paths import ROOT


@functools.cache
def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator and not line.startswith("#"):
            pins[name.strip()] = value.strip()
    return pins


def pinned(name: str) -> str:
    """The value of NAME in hack/versions.env, e.g. pinned("KUBERNETES_VERSION") == "v1.35.4"."""
    return _pins()[name]
