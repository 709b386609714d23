"""The pieces of the mutation that goldens show only by example: the wrapper's command line,
restart-on-sync and the relaxed liveness probe."""

import json

import pytest

from webhook.config import InjectorConfig
from webhook.contract import RELAXED_PROBE_SECONDS, ContainerSettings
from webhook.images import ImageConfig
from webhook.mutate import _relaxed, mutate_pod, wrapper_command
from webhook.plan import Outcome

CONFIG = InjectorConfig(wrapper_image="restart-process/restart-wrapper:0.1.0")
TOOLS = "/restart-process/bin"
SYNC_OPTION = "--sync-file=/run/restart-process/app.sync"


def test_the_wrapper_gets_only_the_options_that_were_chosen():
    command = wrapper_command("app", ["/app", "--flag"], ContainerSettings(), None, None)
    assert command == ["/restart-process/restart-wrapper", "run", "--restart-file=/tmp/.restart-proc",
                       "--restart-file=/run/restart-process/app.restart", "--", "/app", "--flag"]
    chosen = ContainerSettings(restart_file="/app/.restart", watch=("/a", "/b"), debounce="1s", env_file="/app/.env")
    command = wrapper_command("web", ["/web"], chosen, "QUIT", "continue")
    assert command[2:-2] == ["--restart-file=/app/.restart", "--restart-file=/run/restart-process/web.restart",
                             "--watch=/a", "--watch=/b", "--exit-policy=continue", "--stop-signal=QUIT",
                             "--debounce=1s", "--env-file=/app/.env"]


def test_the_sync_file_comes_right_after_the_restart_files():
    chosen = ContainerSettings(restart_file="/app/.restart", watch=("/a",), debounce="1s")
    command = wrapper_command("web", ["/web"], chosen, None, None, sync=True)
    assert command[2:-2] == ["--restart-file=/app/.restart", "--restart-file=/run/restart-process/web.restart",
                             "--sync-file=/run/restart-process/web.sync", "--watch=/a", "--debounce=1s"]
    assert not any(o.startswith("--sync-file") for o in wrapper_command("web", ["/web"], chosen, None, None))


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


# --- restart-on-sync -----------------------------------------------------------------------


def pod(annotations: dict | None = None, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true", **(annotations or {})}},
            "spec": {"containers": [{"name": "app", "image": "app:dev", "command": ["/app"], **container}]}}


def env_of(mutation) -> list[tuple[str, str | None]]:
    return [(e["name"], e.get("value")) for e in mutation.pod["spec"]["containers"][0].get("env") or []]


def command_of(mutation) -> list[str]:
    return mutation.pod["spec"]["containers"][0]["command"]


def status_of(mutation) -> dict:
    return json.loads(mutation.pod["metadata"]["annotations"]["restart-process.dev/injected"])["containers"]


DECLARED_PATH = [{"name": "PATH", "value": "/usr/bin:/bin"}]


@pytest.mark.parametrize("annotations", [{}, {"restart-process.dev/restart-on-sync": "true"},
                                         {"restart-process.dev/restart-on-sync.app": "true"}])
def test_restart_on_sync_by_default_or_asked_for(annotations):
    """The option, the variable after the restart file's, and the tools first on the declared PATH,
    whose original the status annotation keeps."""
    mutation = mutate_pod(pod(annotations, env=DECLARED_PATH), CONFIG)
    assert mutation.outcome is Outcome.INJECTED and mutation.warnings == ()
    assert command_of(mutation)[2:5] == ["--restart-file=/tmp/.restart-proc",
                                         "--restart-file=/run/restart-process/app.restart", SYNC_OPTION]
    assert env_of(mutation) == [("PATH", f"{TOOLS}:/usr/bin:/bin"),
                                ("RESTART_WRAPPER_RESTART_FILE", "/run/restart-process/app.restart"),
                                ("RESTART_WRAPPER_SYNC_FILE", "/run/restart-process/app.sync")]
    assert status_of(mutation)["app"]["env"] == {"PATH": "/usr/bin:/bin"}


def test_restart_on_sync_puts_a_new_path_entry_after_the_sync_file():
    mutation = mutate_pod(pod(env=[{"name": "MODE", "value": "dev"}]), CONFIG,
                          image_configs={"app:dev": ImageConfig(path="/usr/bin")})
    assert [name for name, _ in env_of(mutation)] == ["MODE", "RESTART_WRAPPER_RESTART_FILE",
                                                     "RESTART_WRAPPER_SYNC_FILE", "PATH"]
    assert env_of(mutation)[-1] == ("PATH", f"{TOOLS}:/usr/bin")
    assert status_of(mutation)["app"]["env"] == {"PATH": None}


def test_restart_on_sync_with_the_tools_already_first_changes_no_path():
    path = [{"name": "PATH", "value": f"{TOOLS}:/bin"}]
    mutation = mutate_pod(pod(env=path), CONFIG)
    assert SYNC_OPTION in command_of(mutation) and ("PATH", f"{TOOLS}:/bin") in env_of(mutation)
    assert "env" not in status_of(mutation)["app"]  # PATH was not changed


@pytest.mark.parametrize("annotations", [{"restart-process.dev/restart-on-sync": "false"},
                                         {"restart-process.dev/restart-on-sync.app": "false",
                                          "restart-process.dev/restart-on-sync": "true"}])
def test_restart_on_sync_false_wraps_as_without_it(annotations):
    mutation = mutate_pod(pod(annotations, env=DECLARED_PATH), CONFIG)
    assert mutation.outcome is Outcome.INJECTED and mutation.warnings == ()
    assert not any(o.startswith("--sync-file") for o in command_of(mutation))
    assert env_of(mutation) == [("PATH", f"/usr/bin:/bin:{TOOLS}"),
                                ("RESTART_WRAPPER_RESTART_FILE", "/run/restart-process/app.restart")]


def test_restart_on_sync_is_per_container():
    source = pod({"restart-process.dev/restart-on-sync.worker": "false"}, env=DECLARED_PATH)
    source["spec"]["containers"].append({"name": "worker", "image": "w:dev", "command": ["/w"], "env": DECLARED_PATH})
    app, worker = mutate_pod(source, CONFIG).pod["spec"]["containers"]
    assert SYNC_OPTION in app["command"] and app["env"][0]["value"] == f"{TOOLS}:/usr/bin:/bin"
    assert "--sync-file=/run/restart-process/worker.sync" not in worker["command"]
    assert worker["env"][0]["value"] == f"/usr/bin:/bin:{TOOLS}"


@pytest.mark.parametrize("annotations", [{}, {"restart-process.dev/restart-on-sync": "false"}])
def test_without_the_sync_tools_restart_on_sync_is_silently_off(annotations):
    """sync-tools "false", and restart-on-sync by default (or off): wrapped as before, no warning."""
    mutation = mutate_pod(pod({"restart-process.dev/sync-tools": "false", **annotations}, env=DECLARED_PATH), CONFIG)
    assert mutation.outcome is Outcome.INJECTED and mutation.warnings == ()
    assert not any(o.startswith("--sync-file") for o in command_of(mutation))
    assert env_of(mutation) == [("PATH", "/usr/bin:/bin"),
                                ("RESTART_WRAPPER_RESTART_FILE", "/run/restart-process/app.restart")]


@pytest.mark.parametrize("annotations, container, why", [
    ({"restart-process.dev/sync-tools": "false"}, {"env": DECLARED_PATH},
     'restart-process.dev/sync-tools (or sync-tools.app) is "false"; set sync-tools to "true"'),
    ({}, {"envFrom": [{"configMapRef": {"name": "settings"}}]}, "its PATH is unknown; set PATH in its env"),
    ({}, {}, "its PATH is unknown; set PATH in its env"),  # no lookup made
])
def test_restart_on_sync_asked_for_where_it_cannot_be_is_a_warning(annotations, container, why):
    for asked in ({"restart-process.dev/restart-on-sync": "true"}, {"restart-process.dev/restart-on-sync.app": "true"}):
        mutation = mutate_pod(pod({**annotations, **asked}, **container), CONFIG)
        assert mutation.outcome is Outcome.INJECTED  # still injected, without it
        assert not any(o.startswith("--sync-file") for o in command_of(mutation))
        assert "RESTART_WRAPPER_SYNC_FILE" not in dict(env_of(mutation))
        [warning] = [w for w in mutation.warnings if "restart-on-sync" in w]
        assert warning.startswith('restart-process: container "app": restart-process.dev/restart-on-sync '
                                  '(or restart-on-sync.app) is "true", but syncs cannot restart the program'), warning
        assert why in warning


@pytest.mark.parametrize("restart_on_sync, says", [(None, True), ("true", False), ("false", False)])
def test_the_path_warning_says_syncs_will_not_restart_when_that_is_the_default(restart_on_sync, says):
    """On by default, the PATH warning says what is lost; asked for, its own warning does."""
    annotations = {} if restart_on_sync is None else {"restart-process.dev/restart-on-sync": restart_on_sync}
    mutation = mutate_pod(pod(annotations), CONFIG)  # no PATH, no lookup: PATH unknown
    [warning] = [w for w in mutation.warnings if "PATH unknown" in w]
    assert ("a sync will not restart the program" in warning) == says, warning


def test_a_container_that_sets_the_sync_file_variable_is_a_conflict():
    source = pod(env=[*DECLARED_PATH, {"name": "RESTART_WRAPPER_SYNC_FILE", "value": "/tmp/mine"}])
    mutation = mutate_pod(source, CONFIG)
    assert mutation.outcome is Outcome.INVALID and mutation.pod is source and mutation.patch == ()
    assert mutation.warnings == ('restart-process: container "app" already sets RESTART_WRAPPER_SYNC_FILE; '
                                 "pod left unchanged",)
