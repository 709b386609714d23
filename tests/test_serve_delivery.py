"""`restart-process serve` where it does not read the cluster (tests/apiserver/test_delivery.py has
the server that does). With --delivery=init-container nothing is read: an image-volume a pod asks
for gives way to the init container, with a warning that says why, as the API server's gate
cannot be checked. With no API server to ask at all, the server is as offline as `inject`."""

import json

import yaml

from tests.support.golden import GOLDEN, run_inject
from tests.support.reviews import apply_response, pod_review
from tests.support.webhook_server import WebhookServer, annotated_pod


def review(server: WebhookServer, annotations: dict) -> tuple[dict, list[str]]:
    pod = annotated_pod("p", annotations, env=[{"name": "PATH", "value": "/bin"}])  # PATH: no registry lookup
    with server.client() as client:
        response = client.post("/mutate", json=pod_review(pod)).json()["response"]
    return apply_response(pod, response), response.get("warnings", [])


def delivery_of(pod: dict) -> dict:
    return json.loads(pod["metadata"]["annotations"]["restart-process.dev/injected"])["delivery"]


def test_with_delivery_init_container_nothing_is_read_and_image_volume_gives_way(tmp_path):
    server = WebhookServer("--delivery=init-container", directory=tmp_path).start()
    try:
        pod, warnings = review(server, {"restart-process.dev/delivery": "image-volume"})
        assert pod["spec"]["initContainers"][0]["name"] == "restart-process-install"
        assert warnings == [
            "restart-process: image-volume delivery was asked for (restart-process.dev/delivery), but the webhook "
            "does not read the cluster (--delivery=init-container), so it cannot tell whether the API server's "
            "ImageVolume feature gate is on; the wrapper comes by init container instead"]
        pod, warnings = review(server, {})
        assert not warnings and delivery_of(pod) == {"mode": "init-container",
                                                     "reason": "init-container was asked for (--delivery)"}
    finally:
        assert server.close(), server.output()[-2000:]


def test_without_an_api_server_to_ask_the_webhook_renders_as_inject_does(tmp_path):
    server = WebhookServer("--delivery=auto", directory=tmp_path).start()  # no --kubeconfig, not in a pod
    try:
        assert "the cluster cannot be read" in server.output()
        for case in ("delivery-image-volume.yaml", "command-args.yaml"):
            manifest = yaml.safe_load((GOLDEN / case).read_text())
            with server.client() as client:
                response = client.post("/mutate", json=pod_review(manifest)).json()["response"]
            _, offline, _ = run_inject(GOLDEN / case)
            assert apply_response(manifest, response) == yaml.safe_load(offline)
    finally:
        assert server.close(), server.output()[-2000:]
