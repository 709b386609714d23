"""Fixtures shared by test files in more than one directory, and the session's rules."""

import os
import shutil
import signal

import pytest

from tests.support import docker
from tests.support import session_rules
from tests.support.registry import Registry


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    # Per-suite timeouts, and a run without root that says (and fails on) what it could not test.
    session_rules.register(config)
    # Started as a background job of a non-interactive shell (`make test &` in a script), the run
    # inherits SIGINT and SIGQUIT ignored, and an ignored signal stays ignored across exec: the
    # wrapper and the programs the tests start would never see them. Give the run the
    # dispositions a terminal's would have (children of this process then get the default).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    # UPDATE_GOLDEN writes the code's output over the golden files and then compares it with itself.
    if os.environ.get("UPDATE_GOLDEN") and in_ci():
        raise pytest.UsageError(
            "UPDATE_GOLDEN is set in CI (CI=" + os.environ["CI"] + "): it would write the golden files from the code's "
            "output and compare that output with itself, so the golden tests could not fail. Regenerate them on "
            "your machine (UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py), read the diff, and commit it.")


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
    use `docker_daemon.env()` or `docker_daemon.docker(...)`. With RESTART_PROCESS_DOCKER_HOST
    set, that daemon instead (a user's machine with Docker and a registry)."""
    if os.environ.get("RESTART_PROCESS_DOCKER_HOST"):  # a user's own daemon, as it is
        yield docker.ExistingDockerDaemon(os.environ["RESTART_PROCESS_DOCKER_HOST"])
        return
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
    if not docker_daemon.private:
        return "an existing daemon: its builds pull the bases"
    if shutil.which("mmdebstrap") is None:
        pytest.skip("missing mmdebstrap, which builds the Debian base images: `make test` installs it (make packages)")
    seconds, log = docker.import_bases(docker_daemon)
    docker.TIMINGS["base images (cached)" if ": built in " not in log else "base images (built)"] = seconds
    return log


# Both Dockerfile targets, built once a session for tests/docker and tests/e2e alike.

@pytest.fixture(scope="session")
def wrapper_build(docker_daemon, docker_bases) -> docker.Build:
    return docker.build(docker_daemon, "wrapper", docker.WRAPPER_IMAGE)


@pytest.fixture(scope="session")
def webhook_build(docker_daemon, docker_bases) -> docker.Build:
    return docker.build(docker_daemon, "webhook", docker.WEBHOOK_IMAGE)


@pytest.fixture(scope="session")
def wrapper_image(wrapper_build) -> str:
    if wrapper_build.returncode != 0:
        pytest.fail(f"docker build --target wrapper failed:\n{wrapper_build.output[-6000:]}")
    return wrapper_build.image


@pytest.fixture(scope="session")
def webhook_image(webhook_build) -> str:
    if webhook_build.returncode != 0:
        pytest.fail(f"docker build --target webhook failed:\n{webhook_build.output[-6000:]}")
    return webhook_build.image


def pytest_terminal_summary(terminalreporter):
    if docker.TIMINGS:
        terminalreporter.write_line("docker: " + ", ".join(f"{k} {v:.1f}s" for k, v in docker.TIMINGS.items()))
    if docker.SIZES:
        terminalreporter.write_line("docker images: " + ", ".join(
            f"{image} {size:,} bytes ({size / 1e6:.1f} MB)" if size >= 1e6 else f"{image} {size:,} bytes"
            for image, size in docker.SIZES.items()))
