"""kind end to end: the chart and the Docker-built images on kind, running the live-update
scenario (tests/support/live_update.py) that tests/node runs on a kubelet without Docker.

On machines without Docker or kind this is skipped; the same scenario still runs in real pods
there (tests/node). `make e2e` runs this; .github/workflows/ci.yaml runs it on three Kubernetes
versions.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


missing = [tool for tool in ("kind", "kubectl") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(missing) or not _docker_works(),
                       reason=f"kind e2e needs a working Docker engine, kind and kubectl (missing: "
                              f"{', '.join(missing + ([] if _docker_works() else ['docker engine'])) })"),
]


def test_restart_inside_a_real_pod_on_kind():
    result = subprocess.run(["bash", str(ROOT / "hack" / "e2e-kind.sh")], cwd=ROOT, timeout=1800,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0
