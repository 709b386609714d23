"""The Dockerfile built by a real Docker Engine: the private daemon of tests/support/docker.py,
on base images built from the Debian archive (hack/build-base-images.sh).

Marker `docker` (`pytest -m docker`). They need root and Debian's docker.io and mmdebstrap;
without them they are skipped with that reason.

The builds are the README's commands, plus two options this machine needs:
`--network host`, because the private daemon has no NAT (it never touches iptables, see
tests/support/docker.py) and the RUN steps download packages from the Debian archive and PyPI;
and the machine's CA bundle as the build secret `ca-certificates`, because its HTTPS egress goes
through a TLS-intercepting proxy that pip must trust (the Dockerfile uses the secret when it is
given; on a machine without such a proxy it changes nothing). Those downloads, and mmdebstrap's
from the Debian archive when the base images are not cached yet, are the only traffic of these
tests that leaves the machine: everything else is on loopback (published ports are docker-proxy
on 127.0.0.1) or on the daemon's own bridge.

Why not a cleaner way that keeps the command exactly the README's: NAT for the bridge would need
the host-wide net.ipv4.ip_forward (0 here) and rules in the filter and nat tables that a system
Docker daemon also manages; an HTTP(S) proxy on the bridge given to builds through the CLI's
`proxies` configuration would keep the command, but the CLI puts those variables into every
`docker run` too (the webhook's HTTP client would use them), and it is one more server. dockerd
has no setting for the network of RUN steps: only `docker build --network`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.support import docker
from tests.support.paths import ROOT

VERSION = (ROOT / "VERSION").read_text().strip()
WRAPPER_IMAGE = f"restart-process/restart-wrapper:{VERSION}"
WEBHOOK_IMAGE = f"restart-process/webhook:{VERSION}"
SIZES: dict[str, int] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/docker/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.slow)


@dataclass
class Build:
    image: str
    seconds: float
    returncode: int
    output: str
    size: int | None = None


def build(daemon: docker.DockerDaemon, target: str, image: str) -> Build:
    """`docker build --target TARGET -t IMAGE .`, as the README has it, plus this machine's two options."""
    options = ["--network", "host"]
    ca = docker.host_ca_bundle()
    if ca is not None:
        options += ["--secret", f"id=ca-certificates,src={ca}"]
    started = time.monotonic()
    result = daemon.docker("build", *options, "--target", target, "-t", image, ".", check=False, timeout=1800)
    built = Build(image, time.monotonic() - started, result.returncode, result.stdout + result.stderr)
    docker.TIMINGS[f"docker build --target {target}"] = built.seconds
    if result.returncode == 0:
        built.size = int(daemon.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
        SIZES[image] = built.size
    return built


@pytest.fixture(scope="session")
def wrapper_build(docker_daemon, docker_bases) -> Build:
    return build(docker_daemon, "wrapper", WRAPPER_IMAGE)


@pytest.fixture(scope="session")
def webhook_build(docker_daemon, docker_bases) -> Build:
    return build(docker_daemon, "webhook", WEBHOOK_IMAGE)


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
        terminalreporter.write_line("docker tests: " + ", ".join(f"{k} {v:.1f}s" for k, v in docker.TIMINGS.items()))
    if SIZES:
        terminalreporter.write_line("docker images: " + ", ".join(
            f"{image} {size:,} bytes ({size / 1e6:.1f} MB)" if size >= 1e6 else f"{image} {size:,} bytes"
            for image, size in SIZES.items()))
