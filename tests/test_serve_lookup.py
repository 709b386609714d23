"""The real `restart-process serve` reading ENTRYPOINT/CMD from a real registry on loopback."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import yaml

from tests.support.golden import expected_output, expected_warnings, image_configs, inputs
from tests.support.registry import DOCKER_LIST, DOCKER_MANIFEST, OCI_MANIFEST
from tests.support.registry_lookups import lookup, push_golden_images
from tests.support.reviews import apply_response, pod_review
from tests.support.webhook_server import WebhookServer
from webhook.images import LookupFailure

IMAGE_CASES = [case for case in inputs() if image_configs(case).exists()]


@pytest.fixture(scope="module")
def server(registry):
    """Registry lookup on (loopback registries are plain HTTP by default)."""
    running = WebhookServer("--registry-timeout", "3", "--default-arch", "amd64").start()
    client = running.client()
    yield client
    client.close()
    assert running.close(), "the server did not stop on SIGTERM"


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda p: p.name)
def test_golden_image_cases_through_the_server_and_a_real_registry(registry, server, case):
    pushed = push_golden_images(registry, case)
    pod = yaml.safe_load(case.read_text())
    expected = yaml.safe_load(expected_output(case).read_text())
    for container in [*pod["spec"]["containers"], *expected["spec"]["containers"]]:
        container["image"] = pushed.get(container["image"], container["image"])
    response = server.post("/mutate", json=pod_review(pod)).json()["response"]
    assert apply_response(pod, response) == expected
    want = [line.rsplit(" [document", 1)[0] for line in expected_warnings(case).read_text().splitlines()] \
        if expected_warnings(case).exists() else []
    assert response.get("warnings", []) == want


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_an_index_is_resolved_to_the_pods_architecture(registry, server, media):
    manifest_type = DOCKER_MANIFEST if media == "docker" else None
    kwargs = {"media_type": manifest_type} if manifest_type else {}
    arm = registry.push_image(f"multi-{media}", "arm64", entrypoint=["/bin/arm"], arch="arm64", **kwargs)
    amd = registry.push_image(f"multi-{media}", "amd64", entrypoint=["/bin/amd"], arch="amd64", **kwargs)
    registry.push_index(f"multi-{media}", "v1", {"arm64": arm, "amd64": amd}, **({"media_type": DOCKER_LIST} if manifest_type else {}))
    image = f"{registry.host}/multi-{media}:v1"
    pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
           "spec": {"containers": [{"name": "app", "image": image}]}}
    on_default = apply_response(pod, server.post("/mutate", json=pod_review(pod)).json()["response"])
    assert on_default["spec"]["containers"][0]["command"][-1] == "/bin/amd"
    pod["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    on_arm = apply_response(pod, server.post("/mutate", json=pod_review(pod)).json()["response"])
    assert on_arm["spec"]["containers"][0]["command"][-1] == "/bin/arm"
    assert lookup(image, "s390x") == LookupFailure(f"{registry.host}/multi-{media} has no linux/s390x image")


def test_unknown_image_is_a_warning_and_the_pod_is_left_unwrapped(registry, server):
    pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
           "spec": {"containers": [{"name": "app", "image": f"{registry.host}/does-not-exist:v1"}]}}
    response = server.post("/mutate", json=pod_review(pod)).json()["response"]
    assert "patch" not in response
    warning = response["warnings"][0]
    assert "could not be read" in warning and "not found" in warning and "restart-process.dev/entrypoint" in warning


def test_a_manifest_that_does_not_match_its_digest_is_a_warning_and_the_pod_is_left_unwrapped(registry, server):
    unique = uuid.uuid4().hex  # the registry's storage is content-addressed and shared by the module
    good = registry.push_image("lying", "v1", entrypoint=["/good", unique])
    evil = registry.push_image("lying", "evil", entrypoint=["/evil", unique])
    registry.tamper(good, registry.http.get(f"/v2/lying/manifests/{evil}", headers={"Accept": OCI_MANIFEST}).content)
    pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
           "spec": {"containers": [{"name": "app", "image": f"{registry.host}/lying:v1"}]}}
    response = server.post("/mutate", json=pod_review(pod)).json()["response"]
    assert "patch" not in response  # not wrapped with what the lying registry said
    (warning,) = response["warnings"]
    assert "could not be read" in warning and "does not match its Docker-Content-Digest" in warning, warning


def test_the_server_answers_in_time_when_a_registry_hangs(server):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
               "spec": {"containers": [{"name": "app", "image": f"127.0.0.1:{silent.getsockname()[1]}/app:v1"}]}}
        started = time.monotonic()
        answer = server.post("/mutate", json=pod_review(pod), timeout=10)
        assert answer.status_code == 200 and time.monotonic() - started < 4.5  # deadline 3s, webhook timeout 5s
        assert "did not answer within 3s" in answer.json()["response"]["warnings"][0]
    finally:
        silent.close()
