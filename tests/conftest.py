"""Fixtures shared by test files in more than one directory."""

import pytest

from tests.support.registry import Registry


@pytest.fixture(scope="module")
def registry():
    """A real registry on loopback (Debian's docker-registry), one per test module."""
    running = Registry()
    yield running
    running.stop()
