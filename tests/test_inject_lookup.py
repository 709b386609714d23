"""`restart-process inject` reading ENTRYPOINT/CMD from a real registry on loopback."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import yaml

from tests.support.ports import free_port
from tests.support.slowlink import SlowLink
from webhook import cli, inject


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


def test_one_deadline_for_the_whole_run_whatever_the_architectures(registry, tmp_path):
    """--registry-timeout bounds a whole inject run: two architectures are looked up side by side
    within it, not one full timeout after the other."""
    registry.push_image("slow-multi", "v1", entrypoint=["/slow"])
    link = SlowLink(("127.0.0.1", registry.port), delay=4.0).start()  # every request 4s late: longer than the run
    try:
        image = f"{link.host}/slow-multi:v1"
        pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": arch, "annotations": {"restart-process.dev/enabled": "true"}},
                 "spec": {"nodeSelector": {"kubernetes.io/arch": arch}, "containers": [{"name": "app", "image": image}]}}
                for arch in ("amd64", "arm64")]
        manifest = tmp_path / "pods.yaml"
        manifest.write_text(yaml.safe_dump_all(pods))
        settings = cli.inject_settings(cli._parser().parse_args(
            ["inject", "-f", str(manifest), "--registry-timeout", "1.5"]))
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        assert inject.run(settings, stdout=out, stderr=err) == 0
        elapsed = time.monotonic() - started
        assert link.connections >= 2  # both architectures were asked for, over the slow link
        assert elapsed < 1.5 + 0.75, f"the run took {elapsed:.2f}s with --registry-timeout 1.5"  # one after the other: 3s
        assert err.getvalue().count("the registry did not answer within 1.5s") == 2, err.getvalue()
        assert all("initContainers" not in pod["spec"] for pod in yaml.safe_load_all(out.getvalue()))
    finally:
        link.stop()
