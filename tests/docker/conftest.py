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

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/docker/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.slow)
