"""Linters that need no Docker: hadolint on the Dockerfile, shellcheck on every script."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.binaries import find_binary

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in ROOT.rglob("*.sh") if ".venv" not in p.parts)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is missing: `make test` installs it")
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "examples/app/Dockerfile"])
def test_dockerfiles_are_hadolint_clean(dockerfile):
    result = subprocess.run([tool("hadolint"), dockerfile], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_shellcheck_clean():
    assert len(SCRIPTS) >= 3
    result = subprocess.run([tool("shellcheck"), "-x", *map(str, SCRIPTS)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_two_images_are_the_two_targets():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM scratch AS wrapper" in text and "AS webhook" in text
    assert 'ENTRYPOINT ["restart-process", "serve"]' in text and "USER 10001:10001" in text


def test_the_github_workflow_is_actionlint_clean():
    """The workflow runs kind e2e, which cannot run here; actionlint at least checks it (built from
    the Go module proxy by hack/build-tools.sh; TEST_ASSET_ACTIONLINT to use another)."""
    actionlint = str(find_binary("actionlint"))
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    # shellcheck checks the run: blocks too (actionlint finds it on the PATH).
    result = subprocess.run([actionlint, "-shellcheck", tool("shellcheck"), *map(str, workflows)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
