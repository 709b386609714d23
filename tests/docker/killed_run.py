"""A test run that is killed: start a private daemon (tests/support/docker.py), run a container
with a published port on it, and one on a network of its own (as kind's nodes are), print what it
owns as one JSON line, and wait to be killed.

    python -m tests.docker.killed_run

tests/docker/test_daemon.py SIGKILLs it and checks that nothing of it is left.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

from tests.support.docker import DockerDaemon

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: the whole image


def busybox_image() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
    return buffer.getvalue()


def main() -> int:
    daemon = DockerDaemon().start()
    daemon.docker("import", "-", "killed-run/busybox:1", input=busybox_image(), text=False)
    container = daemon.docker("run", "--detach", "--publish", "127.0.0.1::8080", "killed-run/busybox:1",
                              "/bin/busybox", "sleep", "3600").stdout.strip()
    network_bridge = daemon.network_bridge("k")
    daemon.docker("network", "create", "--driver", "bridge", "--opt", f"com.docker.network.bridge.name={network_bridge}",
                  "kind")
    daemon.docker("run", "--detach", "--network", "kind", "killed-run/busybox:1", "/bin/busybox", "sleep", "3600")
    print(json.dumps({
        "directory": str(daemon.dir), "bridge": daemon.bridge, "network_bridge": network_bridge,
        "cgroup": daemon.cgroup_parent,
        "dockerd": daemon.pid(), "janitor": daemon.janitor.process.pid, "container": container,
        "port": daemon.docker("port", container, "8080/tcp").stdout.strip(),
    }), flush=True)
    while True:  # until killed: no stop(), no finally
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
