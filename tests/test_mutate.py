"""The pieces of the mutation that goldens show only by example: the wrapper's command line and
the relaxed liveness probe."""

import pytest

from webhook.contract import RELAXED_PROBE_SECONDS, ContainerSettings
from webhook.mutate import _relaxed, wrapper_command


def test_the_wrapper_gets_only_the_options_that_were_chosen():
    command = wrapper_command("app", ["/app", "--flag"], ContainerSettings(), None, None)
    assert command == ["/restart-process/restart-wrapper", "run", "--restart-file=/tmp/.restart-proc",
                       "--restart-file=/run/restart-process/app.restart", "--", "/app", "--flag"]
    chosen = ContainerSettings(restart_file="/app/.restart", watch=("/a", "/b"), debounce="1s", env_file="/app/.env")
    command = wrapper_command("web", ["/web"], chosen, "QUIT", "continue")
    assert command[2:-2] == ["--restart-file=/app/.restart", "--restart-file=/run/restart-process/web.restart",
                             "--watch=/a", "--watch=/b", "--exit-policy=continue", "--stop-signal=QUIT",
                             "--debounce=1s", "--env-file=/app/.env"]


def test_the_annotations_exit_policy_wins_over_the_operators_default():
    command = wrapper_command("app", ["/app"], ContainerSettings(exit_policy="restart"), None, "continue")
    assert "--exit-policy=restart" in command and "--exit-policy=continue" not in command


@pytest.mark.parametrize("probe, threshold", [
    ({"httpGet": {"port": 80}}, RELAXED_PROBE_SECONDS // 10),  # kubelet defaults: every 10s, 3 failures
    ({"httpGet": {"port": 80}, "periodSeconds": 7}, 43),  # ceil(300 / 7)
    ({"httpGet": {"port": 80}, "periodSeconds": 0}, RELAXED_PROBE_SECONDS),  # never divides by zero
])
def test_a_relaxed_probe_tolerates_five_minutes_of_failure(probe, threshold):
    relaxed = _relaxed(probe)
    assert relaxed["failureThreshold"] == threshold and relaxed is not probe and "failureThreshold" not in probe


def test_a_probe_that_already_tolerates_more_is_left_alone():
    probe = {"exec": {"command": ["/ok"]}, "periodSeconds": 60, "failureThreshold": 10}
    assert _relaxed(probe) is probe
