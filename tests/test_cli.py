"""`restart-process inject` as a user runs it: files, stdin, errors that say where."""

import subprocess
import sys

import pytest
import yaml

from tests.support.golden import GOLDEN, run_inject

CLI = [sys.executable, "-m", "webhook.cli"]


def test_stdin_and_flags_from_the_environment():
    text = (GOLDEN / "command-args.yaml").read_text()
    result = subprocess.run(
        [*CLI, "inject", "-f", "-"], input=text, capture_output=True, text=True, check=True,
        env={"RESTART_PROCESS_WRAPPER_IMAGE": "localhost:5000/wrapper:env", "PATH": "/usr/bin:/bin"},
    )
    pod = yaml.safe_load(result.stdout)
    assert pod["spec"]["initContainers"][0]["image"] == "localhost:5000/wrapper:env"


def test_flag_beats_environment(monkeypatch):
    monkeypatch.setenv("RESTART_PROCESS_WRAPPER_IMAGE", "from-env")
    code, out, _ = run_inject(GOLDEN / "command-args.yaml", "--wrapper-image", "from-flag")
    assert code == 0 and yaml.safe_load(out)["spec"]["initContainers"][0]["image"] == "from-flag"


def test_annotation_prefix_flag(tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text((GOLDEN / "command-args.yaml").read_text().replace("restart-process.dev/", "example.com/"))
    code, out, _ = run_inject(manifest, "--annotation-prefix", "example.com")
    assert code == 0 and "example.com/injected" in yaml.safe_load(out)["metadata"]["annotations"]


def test_excluded_namespaces_flag(tmp_path):
    code, out, _ = run_inject(GOLDEN / "existing-init-containers.yaml", "--excluded-namespaces", "dev, other")
    assert code == 0 and "injected" not in out


def test_operator_defaults_for_exit_policy_and_liveness_probes(monkeypatch):
    monkeypatch.setenv("RESTART_PROCESS_DEFAULT_LIVENESS_PROBE", "remove")
    code, out, err = run_inject(GOLDEN / "liveness-probe-kept.yaml", "--default-exit-policy", "continue")
    container = yaml.safe_load(out)["spec"]["containers"][0]
    assert code == 0 and "livenessProbe" not in err  # no warning about it: the probe was dealt with
    assert "--exit-policy=continue" in container["command"] and "livenessProbe" not in container
    code, out, _ = run_inject(GOLDEN / "every-setting.yaml", "--default-exit-policy", "restart")
    assert "--exit-policy=continue" in out and "--exit-policy=restart" not in out  # the pod's own choice wins


@pytest.mark.parametrize("flag", ["--default-exit-policy=crash", "--default-liveness-probe=drop"])
def test_operator_defaults_take_only_what_the_annotations_take(flag):
    result = subprocess.run([*CLI, "inject", "-f", str(GOLDEN / "command-args.yaml"), flag],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "expected" in result.stderr


@pytest.mark.parametrize(
    "text, where",
    [
        ("kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata:\n  name: [unclosed\n", "document 2, line 7"),  # the parser notices at the end of the stream
        ("kind: Pod\n  bad: indent\n", "document 1, line 2"),
        ('{"kind": "Pod",\n "metadata": }', "document 1, line 2, column 14"),
        ("- just\n- a list\n", "document 1: expected a Kubernetes object"),
    ],
)
def test_malformed_input_says_where(tmp_path, text, where):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    result = subprocess.run([*CLI, "inject", "-f", str(manifest)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0] and lines[0].startswith("restart-process inject: ")


def test_missing_file(tmp_path):
    result = subprocess.run([*CLI, "inject", "-f", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert result.returncode == 1 and "No such file" in result.stderr


def test_usage_errors_exit_2():
    assert subprocess.run([*CLI], capture_output=True).returncode == 2
    assert subprocess.run([*CLI, "inject"], capture_output=True).returncode == 2
    assert subprocess.run([*CLI, "serve", "--port", "x"], capture_output=True).returncode == 2


def test_empty_documents_are_dropped(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("---\n---\n" + (GOLDEN / "command-args.yaml").read_text() + "---\n")
    code, out, _ = run_inject(manifest)
    assert code == 0 and len(list(yaml.safe_load_all(out))) == 1


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected a JSON object"),
    ('{"app:dev": null}', '"app:dev": expected {"Entrypoint": [...], "Cmd": [...], "StopSignal": "...", "Env": ["PATH=..."]}'),
    ('{"app:dev": {"Entrypoint": "/app"}}', '"app:dev": expected {"Entrypoint": [...], "Cmd": [...], "StopSignal": "...", "Env": ["PATH=..."]}'),
    ('{"app:dev": {"Entrypoint": ["/app"], "StopSignal": 3}}', '"app:dev": expected {"Entrypoint"'),
    ('{"app:dev": {"Entrypoint": ["/app"], "Env": "PATH=/bin"}}', '"app:dev": expected {"Entrypoint"'),
    ("{not json", "Expecting property name"),
])
def test_malformed_image_configs_are_one_clear_line(tmp_path, content, message):
    configs = tmp_path / "images.json"
    configs.write_text(content)
    result = subprocess.run([*CLI, "inject", "-f", str(GOLDEN / "unresolvable.yaml"), "--no-registry-lookup",
                             "--image-configs", str(configs)], capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restart-process inject: --image-configs: ") and message in lines[0]
