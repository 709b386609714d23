"""kind end to end: the wrapper running inside a real pod, which needs a kubelet and so Docker.

On machines without Docker or kind these tests are skipped, and a skip proves nothing: the
integration tests in tests/apiserver cover the admission path without a kubelet.
`make e2e` runs this; .github/workflows/ci.yaml runs it on three Kubernetes versions.
"""

import shutil
import subprocess
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
    result = subprocess.run(["bash", str(ROOT / "hack" / "e2e-kind.sh")], cwd=ROOT, timeout=1800)
    assert result.returncode == 0
