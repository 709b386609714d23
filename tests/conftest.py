"""Fixtures shared by test files in more than one directory."""

import shutil

import pytest

from tests.support import docker
from tests.support.registry import Registry


@pytest.fixture(scope="module")
def registry():
    """A real registry on loopback (Debian's docker-registry), one per test module."""
    running = Registry()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def docker_daemon():
    """A private Docker Engine (tests/support/docker.py) for the session: Debian's dockerd 20.10
    with its own state, bridge, cgroup parent and containerd, gone when the run ends. Clients
    use `docker_daemon.env()` or `docker_daemon.docker(...)`."""
    why = docker.why_not()
    if why:
        pytest.skip(why)
    docker.clean_stale()
    daemon = docker.DockerDaemon().start()
    docker.TIMINGS["dockerd start"] = daemon.start_seconds
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def docker_bases(docker_daemon):
    """The Dockerfile's base images (debian:bookworm-slim), built from the Debian archive by
    hack/build-base-images.sh (once, then cached) and imported into the private daemon."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("missing mmdebstrap, which builds the Debian base images: `make test` installs it (make packages)")
    seconds, log = docker.import_bases(docker_daemon)
    docker.TIMINGS["base images (cached)" if ": built in " not in log else "base images (built)"] = seconds
    return log
