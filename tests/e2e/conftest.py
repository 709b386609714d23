"""The kind end-to-end session: a private Docker Engine, kind on the node image this project
builds, and the chart installed as the README says (tests/support/kind.py).

Marker `e2e` (`make e2e` runs these alone). They need what tests/docker needs (root, Debian's
docker.io, mmdebstrap); without it they are skipped with that reason -- except when asked for
explicitly (`make e2e`, RESTART_PROCESS_E2E=1), where a missing piece is a failure: a run meant to
prove the install path must not pass by skipping it.

Their per-test timeout is far above the suite's default (pyproject.toml): the first test pays for
the node image, the cluster and, run alone, the session's image builds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support import kind as kind_support
from tests.support.kind import Kind

E2E_TIMEOUT = 3600
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
            if not item.get_closest_marker("timeout"):
                item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))


@pytest.fixture(scope="session")
def e2e_required() -> bool:
    return os.environ.get("RESTART_PROCESS_E2E") == "1"


@pytest.fixture(scope="session")
def kind(request, e2e_required, tmp_path_factory) -> Kind:
    try:
        daemon = request.getfixturevalue("docker_daemon")
        request.getfixturevalue("docker_bases")
    except pytest.skip.Exception as skipped:
        if e2e_required:
            pytest.fail(f"the kind e2e was asked for (RESTART_PROCESS_E2E=1) but cannot run: {skipped.msg}")
        raise
    cluster = Kind(daemon, tmp_path_factory.mktemp("kind"))
    try:
        cluster.create()
    except BaseException:
        cluster.delete()
        raise
    yield cluster
    cluster.delete()


def pytest_terminal_summary(terminalreporter):
    if kind_support.TIMINGS:
        terminalreporter.write_line("kind: " + ", ".join(f"{k} {v:.1f}s" for k, v in kind_support.TIMINGS.items()))
    for scenario, outcome in kind_support.OUTCOMES.items():
        terminalreporter.write_line(f"kind: {scenario}: {outcome}")


@pytest.fixture(scope="session")
def go() -> str:
    found = shutil.which("go")
    if found is None:
        pytest.fail("go is needed to build the example app (make test's machines have it)")
    return found
