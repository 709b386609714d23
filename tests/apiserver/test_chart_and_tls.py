"""The chart's objects on a real API server, and self-managed TLS running as the chart's ServiceAccount."""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
import subprocess
import sys
import threading
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import NotFoundError

from tests.chart.helm import SECRET_MODE, render
from webhook.clusterfacts import ClusterWatch
from webhook.selfmanaged import Lifetimes, Material, SelfManagedTLS, new_ca, service_hosts
from webhook.tls import issue_serving_certificate, private_key_pem

from tests.support.ports import free_port
from tests.support.processes import stop
from tests.support.waiting import wait_until


@pytest.fixture
def apply(api):
    """Create objects as `helm install` would; at the end of the test, delete the cluster-wide ones
    (ClusterRoles, bindings, the webhook configuration: the namespace fixture removes the rest), so
    that no release of one test is registered for the rest of the session."""
    resources = dynamic.DynamicClient(api).resources
    created = []

    def create(objects: list[dict]) -> None:
        for obj in objects:
            resource = resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            resource.create(body=obj, namespace=obj["metadata"].get("namespace"))
            created.append((resource, obj["metadata"]["name"]))

    yield create
    for resource, name in reversed(created):
        if not resource.namespaced:
            try:
                resource.delete(name=name)
            except NotFoundError:
                pass


@pytest.mark.parametrize("mode", ["self-managed", "cert-manager", "secret"])
def test_every_rendered_object_is_accepted(apply, namespace, mode):
    sets = {"self-managed": ("replicaCount=2",), "cert-manager": ("tls.mode=cert-manager",), "secret": SECRET_MODE}[mode]
    objects = render(*sets, release=f"r{uuid.uuid4().hex[:6]}", namespace=namespace)
    # cert-manager's Issuer and Certificate need cert-manager's CRDs, which this API server does
    # not have; every other object goes through the real validation.
    ours = [o for o in objects if not o["apiVersion"].startswith("cert-manager.io/")]
    assert len(ours) >= 4
    apply(ours)


def test_the_webhook_pod_itself_passes_pod_security_restricted(core, namespace):
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    deployment = next(o for o in render(namespace=namespace) if o["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "webhook", "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    core.create_namespaced_pod(namespace, pod, dry_run="All")  # raises if PodSecurity refuses it
    (test_pod,) = [o for o in render(f"test.namespace={namespace}", hooks=True) if o["kind"] == "Pod"]  # `helm test`'s
    core.create_namespaced_pod(namespace, test_pod, dry_run="All")


# --- self-managed TLS --------------------------------------------------------------------------


class Release:
    """The chart installed (RBAC, ServiceAccount, webhook configuration) in a fresh namespace."""

    def __init__(self, apply, namespace: str):
        self.namespace = namespace
        self.name = f"r{uuid.uuid4().hex[:6]}-restart-process-webhook"
        objects = render(release=self.name.split("-")[0], namespace=namespace)
        apply([o for o in objects if o["kind"] != "Deployment"])
        self.secret = f"{self.name}-tls"
        self.service_account = f"system:serviceaccount:{namespace}:{self.name}"


@pytest.fixture
def release(apply, namespace):
    return Release(apply, namespace)


@pytest.fixture
def as_webhook(control_plane, release):
    """An API client that acts as the chart's ServiceAccount (the admin impersonates it)."""
    def make():
        api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
        api.set_default_header("Impersonate-User", release.service_account)
        return api
    return make


def manager(as_webhook, release, directory, lifetimes=Lifetimes()):
    return SelfManagedTLS(as_webhook(), release.namespace, release.secret, release.name, release.name,
                          directory, lifetimes)


def ca_bundle(api, release) -> bytes:
    configuration = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(release.name)
    value = configuration.webhooks[0].client_config.ca_bundle
    return base64.b64decode(value) if value else b""


def secret_version(core, release) -> str:
    return core.read_namespaced_secret(release.secret, release.namespace).metadata.resource_version


def verify_chain(cert_pem: bytes, bundle: bytes) -> None:
    cert = x509.load_pem_x509_certificate(cert_pem)
    issuers = {c.subject: c for c in x509.load_pem_x509_certificates(bundle)}
    cert.verify_directly_issued_by(issuers[cert.issuer])


def test_secret_created_once_and_ca_bundle_patched(api, core, release, as_webhook, tmp_path):
    first = manager(as_webhook, release, tmp_path / "a").ensure()
    assert ca_bundle(api, release) == first.ca_bundle
    assert (tmp_path / "a" / "tls.crt").read_bytes() == first.cert
    verify_chain(first.cert, first.ca_bundle)
    names = x509.load_pem_x509_certificate(first.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"{release.name}.{release.namespace}.svc" in names

    version = secret_version(core, release)
    again = manager(as_webhook, release, tmp_path / "a").ensure()
    assert again == first and secret_version(core, release) == version  # nothing rewritten


def owners(core, release) -> list[tuple[str, str, str]]:
    refs = core.read_namespaced_secret(release.secret, release.namespace).metadata.owner_references or []
    return [(ref.kind, ref.name, ref.uid) for ref in refs]


def test_the_secret_is_owned_by_the_webhook_configuration(api, core, release, as_webhook, tmp_path):
    """So `helm uninstall`, which deletes the configuration, leaves no Secret behind (the garbage
    collector deletes it; seen on kind, tests/e2e)."""
    configuration = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(release.name)
    manager(as_webhook, release, tmp_path / "a").ensure()
    assert owners(core, release) == [("MutatingWebhookConfiguration", release.name, configuration.metadata.uid)]


def test_a_secret_without_an_owner_is_adopted_and_kept(api, core, release, as_webhook, tmp_path):
    """One made by an earlier version (or by hand) keeps its certificates and gains the owner."""
    made = manager(as_webhook, release, tmp_path / "a").ensure()
    secret = core.read_namespaced_secret(release.secret, release.namespace)
    secret.metadata.owner_references = None
    core.replace_namespaced_secret(release.secret, release.namespace, secret)
    assert owners(core, release) == []
    assert manager(as_webhook, release, tmp_path / "b").ensure() == made
    assert [kind for kind, _, _ in owners(core, release)] == ["MutatingWebhookConfiguration"]


def test_a_second_replica_adopts_the_same_certificate(core, release, as_webhook, tmp_path):
    first = manager(as_webhook, release, tmp_path / "a").ensure()
    version = secret_version(core, release)
    second = manager(as_webhook, release, tmp_path / "b").ensure()
    assert second == first and secret_version(core, release) == version
    assert (tmp_path / "b" / "tls.crt").read_bytes() == (tmp_path / "a" / "tls.crt").read_bytes()


def test_replicas_starting_at_once_agree_on_one_ca(api, release, as_webhook, tmp_path):
    start, results = threading.Barrier(3, timeout=60), {}  # a replica that fails early breaks it, not hangs it

    def replica(name):
        m = manager(as_webhook, release, tmp_path / name)
        start.wait()
        results[name] = m.ensure()

    threads = [threading.Thread(target=replica, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a replica is still ensuring after 120s"
    assert results["a"] == results["b"] == results["c"]
    assert ca_bundle(api, release) == results["a"].ca_bundle


def expiring_material(release, ca_days: float, serving_days: float) -> Material:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca, ca_key = new_ca(Lifetimes(ca=datetime.timedelta(days=ca_days)), now)
    key, cert = issue_serving_certificate(ca, ca_key, service_hosts(release.name, release.namespace), serving_days)
    return Material(ca.public_bytes(serialization.Encoding.PEM), private_key_pem(ca_key), cert, key)


def put_secret(core, release, material: Material) -> None:
    body = {"metadata": {"name": release.secret}, "data": material.secret_data()}
    try:
        core.replace_namespaced_secret(release.secret, release.namespace, body)
    except ApiException:
        core.create_namespaced_secret(release.namespace, body)


def test_an_expiring_serving_certificate_is_renewed_with_the_same_ca(api, core, release, as_webhook, tmp_path):
    old = expiring_material(release, ca_days=3650, serving_days=2)
    put_secret(core, release, old)
    renewed = manager(as_webhook, release, tmp_path / "a").ensure()
    assert renewed.ca_bundle == old.ca_bundle and renewed.cert != old.cert
    serving = x509.load_pem_x509_certificate(renewed.cert)
    assert serving.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=300)
    assert (tmp_path / "a" / "tls.crt").read_bytes() == renewed.cert


def test_an_expiring_ca_is_rotated_and_the_ca_bundle_repatched(api, core, release, as_webhook, tmp_path):
    old = expiring_material(release, ca_days=30, serving_days=20)
    put_secret(core, release, old)
    manager(as_webhook, release, tmp_path / "a").ensure()  # patches the old CA in first
    rotated = manager(as_webhook, release, tmp_path / "a", Lifetimes()).ensure()
    bundle = x509.load_pem_x509_certificates(rotated.ca_bundle)
    assert len(bundle) == 2 and bundle[1].public_bytes(serialization.Encoding.PEM) == old.ca_bundle
    verify_chain(rotated.cert, rotated.ca_bundle)
    assert ca_bundle(api, release) == rotated.ca_bundle  # clients trust old and new during the switch


def test_a_ca_bundle_reset_by_an_upgrade_is_repaired(api, release, as_webhook, tmp_path):
    material = manager(as_webhook, release, tmp_path / "a").ensure()
    admission = client.AdmissionregistrationV1Api(api)
    admission.patch_mutating_webhook_configuration(
        release.name, [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}])
    assert ca_bundle(api, release) == b""
    manager(as_webhook, release, tmp_path / "a").ensure()
    assert ca_bundle(api, release) == material.ca_bundle


def test_the_service_account_can_do_nothing_else(core, release, as_webhook, namespace):
    core.create_namespaced_secret(namespace, {"metadata": {"name": "someone-elses"}, "stringData": {"k": "v"}})
    limited = client.CoreV1Api(as_webhook())
    with pytest.raises(ApiException) as absent:  # allowed to look for the local registry's ConfigMap...
        limited.read_namespaced_config_map("local-registry-hosting", "kube-public")
    assert absent.value.status == 404
    with pytest.raises(ApiException) as denied:  # ...and nothing else there
        limited.read_namespaced_config_map("cluster-info", "kube-public")
    assert denied.value.status == 403
    for attempt in (lambda: limited.read_namespaced_secret("someone-elses", namespace),
                    lambda: limited.list_namespaced_secret(namespace),
                    lambda: limited.read_namespaced_secret("x", "kube-system"),
                    lambda: client.AdmissionregistrationV1Api(as_webhook()).list_mutating_webhook_configuration()):
        with pytest.raises(ApiException) as denied:
            attempt()
        assert denied.value.status == 403


def test_the_cluster_facts_need_what_the_chart_grants_and_get_nothing_more(api, core, release, as_webhook):
    """delivery auto (the default): as the chart's ServiceAccount, the webhook reads the API server's
    version and its ImageVolume gate from /metrics, and lists and watches nodes and namespaces."""
    node = f"{release.name}-node"
    core.create_node({"metadata": {"name": node}})
    watch = ClusterWatch(as_webhook())
    watch.start()
    try:
        watch.refresh_api_server()
        assert watch.facts.api_server_version == "v1.35.4"
        assert watch.facts.image_volume_gate is True  # read from /metrics, not the version's default
        wait_until(lambda: release.namespace in watch.facts.pod_security and node in {n.name for n in watch.facts.nodes},
                   15, interval=0.1, what="the namespace and node lists")
        core.patch_namespace(release.namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
        wait_until(lambda: watch.facts.pod_security.get(release.namespace) == "baseline", 15, interval=0.1,
                   what="a namespace change to be watched")
        assert watch._read_namespace(release.namespace)["metadata"]["name"] == release.namespace  # get, for one not seen
    finally:
        watch.stop()
        core.delete_node(node)

    limited = as_webhook()
    reader = client.CoreV1Api(limited)
    for attempt in (lambda: reader.read_node(node),  # list and watch only: a node is never read alone
                    lambda: reader.patch_node(node, {"metadata": {"labels": {"a": "b"}}}),
                    lambda: reader.patch_namespace(release.namespace, {"metadata": {"labels": {"a": "b"}}}),
                    lambda: reader.delete_namespace(release.namespace),
                    lambda: reader.list_pod_for_all_namespaces()):
        with pytest.raises(ApiException) as denied:
            attempt()
        assert denied.value.status == 403
    assert raw_get(limited, "/metrics") == 200 and raw_get(limited, "/metrics/slis") == 403  # that one URL only


def raw_get(api, path: str) -> int:
    """The status of a GET on a path that no generated method covers (/metrics)."""
    response = api.call_api(*api.param_serialize("GET", path, auth_settings=["BearerToken"]))
    response.response.close()
    return response.status


def test_serve_in_self_managed_mode(core, control_plane, release, tmp_path):
    """The real server: creates the Secret, patches the caBundle, serves that certificate for the service name."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-mode=self-managed", f"--kubeconfig={control_plane.kubeconfig}", f"--namespace={release.namespace}",
         f"--tls-secret-name={release.secret}", f"--webhook-configuration-name={release.name}",
         f"--service-name={release.name}", f"--tls-dir={tmp_path / 'tls'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    def ready_with_the_secrets_certificate() -> bool:
        secret = core.read_namespaced_secret(release.secret, release.namespace)
        bundle = base64.b64decode(secret.data["ca.crt"])
        context = ssl.create_default_context(cadata=bundle.decode())
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, context.wrap_socket(
                raw, server_hostname=f"{release.name}.{release.namespace}.svc") as tls:
            tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")

    try:
        wait_until(ready_with_the_secrets_certificate, 30, interval=0.2, what="self-managed serve to come up",
                   ignoring=(ApiException, OSError), process=process)
    finally:
        assert stop(process), "the server did not stop on SIGTERM"
