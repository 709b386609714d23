"""The session's own rules (tests/support/session_rules.py, pyproject.toml): a test that hangs fails,
each suite has the timeout it can live with, and a run without root says what it could not test
and fails unless that was asked for. Each checked on a real pytest run in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.paths import ROOT
from tests.support.session_rules import ACCEPT_WITHOUT_ROOT, SLOW_TIMEOUT, SUITE_TIMEOUTS

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def test_the_default_timeout_is_configured(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("timeout"), "pytest-timeout is not installed: `make test` installs it"
    assert float(pytestconfig.getini("timeout")) == 300


def test_a_test_that_hangs_fails_at_its_timeout(tmp_path):
    (tmp_path / "test_hangs.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(600)\n")
    started = time.monotonic()
    result = subprocess.run([*PYTEST, "-o", "timeout=2", "--rootdir", str(tmp_path), str(tmp_path)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "Timeout (>2.0s" in result.stdout and "1 failed" in result.stdout, result.stdout
    assert time.monotonic() - started < 60


PROBE = '''
def pytest_collection_finish(session):
    for item in session.items:
        marker = item.get_closest_marker("timeout")
        print("TIMEOUT", item.nodeid, marker.args[0] if marker else "default")
'''


def test_each_suite_gets_the_timeout_it_can_live_with(tmp_path):
    (tmp_path / "timeout_probe.py").write_text(PROBE)
    suites = ["tests/node", "tests/docker", "tests/e2e", "tests/test_patch.py", "tests/apiserver/test_examples.py"]
    result = subprocess.run([*PYTEST, "--collect-only", "-q", "-p", "timeout_probe", *suites], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    timeouts = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("TIMEOUT "))
    by_suite: dict[str, set[str]] = {}
    for nodeid, seconds in timeouts.items():
        suite = next((s for s in suites if nodeid.startswith(s)), None)
        by_suite.setdefault(suite, set()).add(seconds)
    assert by_suite == {
        "tests/node": {str(SUITE_TIMEOUTS["tests/node/"])},
        "tests/docker": {str(SUITE_TIMEOUTS["tests/docker/"])},
        "tests/e2e": {"3600"},
        "tests/test_patch.py": {"default"},  # pyproject.toml's 300
        "tests/apiserver/test_examples.py": {"default"},
    }, by_suite
    assert SLOW_TIMEOUT >= 3600


def without_root(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """pytest as an unprivileged user: `unshare --user` without a mapping makes this root process
    uid 65534 with no capability over the machine's files, namespaces or mounts."""
    return subprocess.run(["unshare", "--user", *PYTEST, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_without_root_the_run_names_what_it_skipped_and_fails():
    result = without_root("tests/test_selftest.py")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "NOT ROOT: 2 tests that need root did not run" in result.stdout, result.stdout
    assert "2 x a PID namespace needs root (unshare --pid)" in result.stdout
    assert f"So it FAILS, whatever passed. To accept a run without these tests, set {ACCEPT_WITHOUT_ROOT}=1" \
        in result.stdout


def test_without_root_a_partial_run_that_was_asked_for_passes_and_still_says_so():
    result = without_root("tests/test_selftest.py", env={ACCEPT_WITHOUT_ROOT: "1"})
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "NOT ROOT: 2 tests that need root did not run" in result.stdout
    assert "the partial run was asked for" in result.stdout


def test_as_root_nothing_is_said():
    if os.geteuid() != 0:
        pytest.skip("needs root, to run pytest as root")
    result = subprocess.run([*PYTEST, "tests/test_selftest.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "NOT ROOT" not in result.stdout and "2 passed" in result.stdout
