"""`restart-process inject` reading ENTRYPOINT/CMD from a real registry on loopback."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.support.ports import free_port


def test_inject_cli_reads_the_registry(registry, tmp_path):
    registry.push_image("cli", "v1", entrypoint=["/cli-entry"], cmd=["serve"])
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "image": f"{registry.host}/cli:v1"}]}}))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest)],
                            capture_output=True, text=True, timeout=30)
    container = yaml.safe_load(result.stdout)["spec"]["containers"][0]
    assert container["command"][-2:] == ["--", "/cli-entry"] and container["args"] == ["serve"]
    off = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest), "--no-registry-lookup"],
                         capture_output=True, text=True, timeout=30)
    assert "has no command to restart" in off.stderr


def test_inject_reaches_a_registry_under_another_name(registry, tmp_path):
    """As on kind: images say localhost:5001, the registry is reached elsewhere."""
    registry.push_image("aliased-cli", "v1", entrypoint=["/aliased"])
    named = f"localhost:{free_port()}"  # nothing listens there
    image = f"{named}/aliased-cli:v1"
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "image": image}]}}))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest),
                             "--registry-aliases", f"{named}={registry.host}"], capture_output=True, text=True, timeout=30)
    assert yaml.safe_load(result.stdout)["spec"]["containers"][0]["command"][-1] == "/aliased"
    bad = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest), "--registry-aliases", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "FROM=TO" in bad.stderr
