"""Rules for the whole test session; tests/conftest.py registers them (`register`).

Timeouts: every test fails after pyproject.toml's `timeout` (pytest-timeout), its fixtures' setup
included -- unless it sets its own (`@pytest.mark.timeout`) or is one of the slow ones below. The
first test of a slow suite also pays for the session fixtures it starts (a node and its images, a
Docker Engine and two image builds, a kind cluster), hence their size.

Without root: the suites that need it (tests/node, tests/docker, parts of tests/wrapper, the
self-test's PID namespace, the kind node image) skip. The run then ends with a summary of every
such test and why, and fails -- a green `make test` means everything ran -- unless the partial run
was asked for with RESTART_PROCESS_TESTS_WITHOUT_ROOT=1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Per suite (a path prefix from the checkout); tests/e2e sets its own in tests/e2e/conftest.py.
SUITE_TIMEOUTS = {
    "tests/node/": 1200,  # the first test starts the control plane, the node and builds the images
    "tests/docker/": 3600,  # the first test builds both Dockerfile targets (up to 1800s each)
}
SLOW_TIMEOUT = 3600  # any other test marked slow (the kind node image is built by mmdebstrap)
ACCEPT_WITHOUT_ROOT = "RESTART_PROCESS_TESTS_WITHOUT_ROOT"
_NEEDS_ROOT = re.compile(r"\broot\b", re.IGNORECASE)  # every such skip reason says "needs root"


def register(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("restart-process-session-rules"):
        config.pluginmanager.register(SessionRules(), "restart-process-session-rules")


def timeout_for(item: pytest.Item) -> int | None:
    """The timeout this session gives `item` instead of the default, or None."""
    if item.get_closest_marker("timeout"):
        return None  # the test's own
    where = Path(str(item.fspath)).resolve()
    relative = where.relative_to(ROOT).as_posix() if where.is_relative_to(ROOT) else where.as_posix()
    for prefix, seconds in SUITE_TIMEOUTS.items():
        if relative.startswith(prefix):
            return seconds
    return SLOW_TIMEOUT if item.get_closest_marker("slow") else None


class SessionRules:
    def __init__(self):
        self.is_root = os.geteuid() == 0
        self.root_skips: list[tuple[str, str]] = []  # (test id, reason)

    @pytest.hookimpl(trylast=True)  # after the conftests that add the slow marker
    def pytest_collection_modifyitems(self, items):
        for item in items:
            seconds = timeout_for(item)
            if seconds is not None:
                item.add_marker(pytest.mark.timeout(seconds))

    def pytest_runtest_logreport(self, report):
        if self.is_root or not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if _NEEDS_ROOT.search(reason):
            self.root_skips.append((report.nodeid, reason))

    def accepted(self) -> bool:
        return os.environ.get(ACCEPT_WITHOUT_ROOT, "").lower() in ("1", "true", "yes")

    def pytest_sessionfinish(self, session):
        if self.root_skips and not self.accepted() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.root_skips:
            return
        write = terminalreporter.write_line
        terminalreporter.section(f"NOT ROOT: {len(self.root_skips)} tests that need root did not run", sep="!",
                                 red=True, bold=True)
        by_reason: dict[str, list[str]] = {}
        for nodeid, reason in self.root_skips:
            by_reason.setdefault(reason, []).append(nodeid)
        for reason, nodeids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            suites = sorted({nodeid.split("::")[0] for nodeid in nodeids})
            write(f"{len(nodeids):4} x {reason}")
            for suite in suites[:6]:
                write(f"       {suite}")
            if len(suites) > 6:
                write(f"       ... and {len(suites) - 6} more files")
        write(f"This run (uid {os.geteuid()}) is not the whole suite: `sudo make test` runs every test.")
        if self.accepted():
            write(f"{ACCEPT_WITHOUT_ROOT}=1: the partial run was asked for, so it does not fail for this.")
        else:
            write(f"So it FAILS, whatever passed. To accept a run without these tests, set {ACCEPT_WITHOUT_ROOT}=1.",
                  red=True, bold=True)
