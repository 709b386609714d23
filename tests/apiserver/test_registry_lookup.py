"""Pods without `command` through the real API server: the image's ENTRYPOINT comes from a real registry."""

import asyncio
import base64
import json

import pytest

from webhook.images import ImageConfig
from webhook.pullsecrets import PullSecrets
from webhook.registry import RegistryClient, Resolver

from ..registry_harness import PASSWORD, USER, Registry
from .harness import annotated_pod


@pytest.fixture(scope="module")
def registry():
    running = Registry()
    yield running
    running.stop()


def test_a_pod_with_only_the_opt_in_annotation_is_wrapped_with_the_images_entrypoint(core, registered, registry, namespace):
    registry.push_image("team/api", "v1", entrypoint=["/usr/local/bin/api"], cmd=["--listen=:8080"])
    pod = annotated_pod("api", image=f"{registry.host}/team/api:v1")
    del pod["spec"]["containers"][0]["command"]
    del pod["spec"]["containers"][0]["args"]
    stored = core.create_namespaced_pod(namespace, pod)
    container = stored.spec.containers[0]
    assert container.command == ["/restart-process/restart-wrapper", "run", "--", "/usr/local/bin/api"]
    assert container.args == ["--listen=:8080"]  # the image CMD, which setting command would otherwise drop
    assert stored.spec.init_containers[0].name == "restart-process-install"


def test_pull_secrets_of_the_pod_and_its_service_account(api, core, namespace):
    private = Registry("htpasswd")
    try:
        private.push_image("private/app", "v1", entrypoint=["/private"])
        config = base64.b64encode(json.dumps({"auths": {private.host: {"username": USER, "password": PASSWORD}}}).encode()).decode()
        core.create_namespaced_secret(namespace, {"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
                                                  "data": {".dockerconfigjson": config}})
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "builder"},
                                                           "imagePullSecrets": [{"name": "regcred"}]})
        image = f"{private.host}/private/app:v1"

        async def resolve(pod):
            client = RegistryClient()
            try:
                credentials = await PullSecrets(api).for_pod(pod, namespace)
                return credentials, (await Resolver(client, 5).resolve([image], "amd64", credentials))[image]
            finally:
                await client.close()

        from_pod = {"spec": {"imagePullSecrets": [{"name": "regcred"}], "containers": []}}
        from_account = {"spec": {"serviceAccountName": "builder", "containers": []}}
        nothing = {"spec": {"containers": []}}
        for pod in (from_pod, from_account):
            credentials, config_ = asyncio.run(resolve(pod))
            assert [c.registry for c in credentials] == [private.host]
            assert config_ == ImageConfig(("/private",), ())
        credentials, failure = asyncio.run(resolve(nothing))
        assert credentials == () and "needs credentials" in failure.reason
    finally:
        private.stop()


def test_the_local_registry_is_discovered_from_kube_public(api, core, control_plane, registry, tmp_path):
    """kind/ctlptl's ConfigMap tells the webhook where pods reach the registry that images call localhost:5001."""
    import ssl
    import subprocess
    import sys
    import time

    import httpx

    from webhook.localregistry import discover
    from webhook.tls import generate_self_signed

    from ..admission_reviews import pod_review
    from ..ports import free_port
    from ..processes import stop

    assert discover(api) == {}  # no ConfigMap yet
    named = f"localhost:{free_port()}"
    core.create_namespaced_config_map("kube-public", {
        "metadata": {"name": "local-registry-hosting"},
        "data": {"localRegistryHosting.v1": f'host: "{named}"\nhostFromClusterNetwork: "{registry.host}"\n'}})
    try:
        assert discover(api) == {named: registry.host}
        registry.push_image("local/app", "dev", entrypoint=["/local-app"])
        certs = generate_self_signed(tmp_path, ["127.0.0.1"])
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--tls-cert-file", str(certs.cert_file), "--tls-key-file", str(certs.key_file),
             "--discover-local-registry", f"--kubeconfig={control_plane.kubeconfig}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"))
        client = None
        try:
            client = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(certs.ca_file)))
            pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
                   "spec": {"containers": [{"name": "app", "image": f"{named}/local/app:dev"}]}}
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = client.post("/mutate", json=pod_review(pod)).json()["response"]
                    if "patch" in response:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, "the alias was never used"
                time.sleep(0.2)
            assert response.get("warnings") is None
        finally:
            if client is not None:
                client.close()
            if not stop(process):
                raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
    finally:
        core.delete_namespaced_config_map("local-registry-hosting", "kube-public")
