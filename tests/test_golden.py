"""Golden files: the CLI's output for each case, and each case re-run on its own output (idempotence)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.golden import cluster_facts, expected_output, expected_warnings, image_configs, inputs, run_inject

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("case", inputs(), ids=lambda p: p.name)
def test_golden_output(case):
    code, out, err = run_inject(case, images=image_configs(case), facts=cluster_facts(case))
    assert code == 0, err
    if UPDATE:
        expected_output(case).write_text(out)
        if err:
            expected_warnings(case).write_text(err)
        elif expected_warnings(case).exists():
            expected_warnings(case).unlink()
    assert out == expected_output(case).read_text()
    warnings = expected_warnings(case)
    assert err == (warnings.read_text() if warnings.exists() else "")
    for line in err.splitlines():
        assert line.startswith("restart-process: "), line


@pytest.mark.parametrize("case", inputs(), ids=lambda p: p.name)
def test_golden_is_idempotent(case, tmp_path):
    """Injecting into the injected output changes nothing: safe under reinvocationPolicy: IfNeeded."""
    once = tmp_path / "once.yaml"
    once.write_text(expected_output(case).read_text())
    code, twice, err = run_inject(once, images=image_configs(case), facts=cluster_facts(case))
    assert code == 0, err
    assert list(yaml.safe_load_all(twice)) == list(yaml.safe_load_all(once.read_text()))


def test_every_injected_case_changes_something():
    """Guard against a golden set that silently stopped injecting anything."""
    injected = [c for c in inputs() if "restart-process.dev/injected" in expected_output(c).read_text()]
    assert len(injected) >= 12


def test_update_golden_is_refused_in_ci():
    """In CI the golden files are checked, never rewritten: pytest refuses to start."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "UPDATE_GOLDEN": "1", "CI": "true"}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "tests/test_golden.py"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "UPDATE_GOLDEN is set in CI" in result.stderr, result.stderr
