"""`restart-process self-test` (the chart's `helm test` pod) in a PID namespace of its own, as in a
pod: under the real wrapper as PID 1 it passes; as PID 1 itself -- a pod the webhook never
mutated -- it fails and says what to check. On kind, tests/e2e runs it through `helm test`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import BUILD, ROOT

SELF_TEST = [sys.executable, "-m", "webhook.cli", "self-test", "--webhook-configuration", "rpw-restart-process-webhook",
             "--webhook-namespace", "rp-system"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root (unshare --pid)")


def in_pid_namespace(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "POD_NAMESPACE": "apps"})


def test_under_the_wrapper_it_passes():
    result = in_pid_namespace(str(BUILD / "restart-wrapper"), "run", "--exit-policy=restart", "--", *SELF_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restart-process: injected" in result.stdout


def test_without_the_wrapper_it_fails_and_says_what_to_check():
    result = in_pid_namespace(*SELF_TEST)
    assert result.returncode == 1
    assert "restart-process: NOT injected" in result.stdout
    for hint in ("kubectl -n rp-system get pods", "MutatingWebhookConfiguration rpw-restart-process-webhook",
                 "namespace apps is not excluded"):
        assert hint in result.stdout
