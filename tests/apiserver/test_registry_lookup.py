"""Pods without `command` through the real API server: the image's ENTRYPOINT comes from a real registry."""

import asyncio
import base64
import json
import time
import urllib.parse

import yaml

from tests.support.ports import free_port
from tests.support.registry import PASSWORD, USER, Registry
from tests.support.reviews import pod_review
from tests.support.slowlink import SlowLink
from tests.support.waiting import wait_until
from tests.support.webhook_server import WebhookServer, annotated_pod
from webhook.images import ImageConfig
from webhook.localregistry import discover
from webhook.pullsecrets import PullSecrets
from webhook.registry import RegistryClient, Resolver


def test_a_pod_with_only_the_opt_in_annotation_is_wrapped_with_the_images_entrypoint(core, registered, registry, namespace):
    registry.push_image("team/api", "v1", entrypoint=["/usr/local/bin/api"], cmd=["--listen=:8080"])
    pod = annotated_pod("api", image=f"{registry.host}/team/api:v1")
    del pod["spec"]["containers"][0]["command"]
    del pod["spec"]["containers"][0]["args"]
    stored = core.create_namespaced_pod(namespace, pod)
    container = stored.spec.containers[0]
    assert container.command[:2] == ["/restart-process/restart-wrapper", "run"]
    assert container.command[-2:] == ["--", "/usr/local/bin/api"]
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
    assert discover(api) == {}  # no ConfigMap yet
    named = f"localhost:{free_port()}"
    core.create_namespaced_config_map("kube-public", {
        "metadata": {"name": "local-registry-hosting"},
        "data": {"localRegistryHosting.v1": f'host: "{named}"\nhostFromClusterNetwork: "{registry.host}"\n'}})
    try:
        assert discover(api) == {named: registry.host}
        registry.push_image("local/app", "dev", entrypoint=["/local-app"])
        server = WebhookServer("--discover-local-registry", f"--kubeconfig={control_plane.kubeconfig}",
                               directory=tmp_path).start()
        try:
            pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
                   "spec": {"containers": [{"name": "app", "image": f"{named}/local/app:dev"}]}}
            with server.client() as client:
                response = wait_until(lambda: "patch" in (r := client.post("/mutate", json=pod_review(pod)).json()["response"])
                                      and r, 20, interval=0.2, what="the discovered alias to be used",
                                      process=server.process)
            assert response.get("warnings") is None
        finally:
            assert server.stop(), server.output()[-3000:]
    finally:
        core.delete_namespaced_config_map("local-registry-hosting", "kube-public")


def test_pull_secrets_and_registry_share_one_deadline(core, control_plane, namespace, tmp_path):
    """--registry-timeout is the pod's whole budget: reading its pull secrets from a slow API server
    and then a slow registry end together at the deadline, not one budget after the other."""
    private = Registry("htpasswd")
    registry_link = SlowLink(("127.0.0.1", private.port), delay=2.0).start()  # manifest, retry, config: 6s
    api_server = urllib.parse.urlsplit(control_plane.url)
    # TLS and two reads: about 1.2s, under the half of the budget that pull secrets used to get on their own.
    api_link = SlowLink((api_server.hostname, api_server.port), delay=0.3).start()
    server = None
    try:
        private.push_image("private/slow", "v1", entrypoint=["/private"])
        config = base64.b64encode(json.dumps({"auths": {registry_link.host: {"username": USER, "password": PASSWORD}}})
                                  .encode()).decode()
        core.create_namespaced_secret(namespace, {"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
                                                  "data": {".dockerconfigjson": config}})
        kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://{api_link.host}"
        (tmp_path / "slow-kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        server = WebhookServer("--registry-credentials", f"--kubeconfig={tmp_path / 'slow-kubeconfig'}",
                               "--delivery=init-container", "--registry-timeout=4", directory=tmp_path).start()
        pod = {"metadata": {"name": "p", "namespace": namespace, "annotations": {"restart-process.dev/enabled": "true"}},
               "spec": {"imagePullSecrets": [{"name": "regcred"}],
                        "containers": [{"name": "app", "image": f"{registry_link.host}/private/slow:v1"}]}}
        with server.client() as client:
            started = time.monotonic()
            answer = client.post("/mutate", json=pod_review(pod, namespace=namespace), timeout=30)
            elapsed = time.monotonic() - started
        assert answer.status_code == 200
        assert api_link.forwarded > 0 and registry_link.forwarded > 0  # secrets read, then the registry asked
        # One budget after the other (pull secrets, then a full one for the registry) was about 5.2s.
        assert elapsed < 4 + 0.6, f"answered after {elapsed:.2f}s with --registry-timeout=4"
        assert "did not answer within 4s" in answer.json()["response"]["warnings"][0]
    finally:
        if server is not None:
            assert server.close(), server.output()[-3000:]
        api_link.stop()
        registry_link.stop()
        private.stop()
