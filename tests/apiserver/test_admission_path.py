"""Every admission claim, demonstrated against a real kube-apiserver (v1.35) and etcd."""

from __future__ import annotations

import io
import uuid
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from webhook import cli
from webhook.registration import webhook_configuration

from .conftest import ISOLATED
from tests.support.waiting import wait_until
from tests.support.webhook_server import WebhookServer, annotated_pod, wait_for_mutation

RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def as_dict(api, obj) -> dict:
    return api.sanitize_for_serialization(obj)


def run_inject(manifest: dict, tmp_path) -> dict:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["inject", "-f", str(path)]) == 0, err.getvalue()
    return yaml.safe_load(out.getvalue())


def test_annotated_pod_is_stored_mutated_exactly_as_inject_renders_it(api, core, registered, namespace, tmp_path):
    manifest = annotated_pod("web", {"restart-process.dev/watch": "/app/bin"})
    stored = as_dict(api, core.create_namespaced_pod(namespace, manifest))

    spec = stored["spec"]
    assert spec["initContainers"][0]["name"] == "restart-process-install"
    assert {"name": "restart-process", "emptyDir": {"sizeLimit": "16Mi"}} in spec["volumes"]
    app = spec["containers"][0]
    assert app["command"] == ["/restart-process/restart-wrapper", "run", "--restart-file=/tmp/.restart-proc",
                              "--restart-file=/run/restart-process/app.restart", "--watch=/app/bin", "--", "/app/server"]
    assert app["args"] == ["--port=8080"]
    assert {"name": "restart-process", "mountPath": "/restart-process", "readOnly": True} in app["volumeMounts"]
    assert "restart-process.dev/injected" in stored["metadata"]["annotations"]

    # The same manifest through `restart-process inject`, then defaulted by the same API server
    # (a dry-run create elsewhere; its status annotation keeps the webhook out of it).
    offline = run_inject(manifest, tmp_path)
    other = f"{namespace}-offline"
    core.create_namespace({"metadata": {"name": other}})
    try:
        rendered = as_dict(api, core.create_namespaced_pod(other, offline, dry_run="All"))
    finally:
        core.delete_namespace(other)
    assert stored["spec"] == rendered["spec"]
    assert stored["metadata"]["annotations"] == rendered["metadata"]["annotations"]


COUNTED = "restart-process.dev/test-counted"


@pytest.fixture(scope="module")
def counting_server():
    """A webhook server that only `counted` registrations call: its admissions are this module's alone."""
    server = WebhookServer().start()
    yield server
    assert server.close(), "the counting server did not stop on SIGTERM"


class Counted:
    """The production registration (matchConditions, excluded namespaces) of a server that nothing
    else calls, narrowed to pods carrying one test's own label: its admissions counter moves for
    this test's pods and nothing else, whatever ran before or runs beside it."""

    def __init__(self, api, core, server: WebhookServer):
        self.core, self.server = core, server
        self.label = {COUNTED: uuid.uuid4().hex[:12]}
        self.body = webhook_configuration(server.client_config(), name=f"restart-process-counted-{self.label[COUNTED]}")
        self.body["webhooks"][0]["objectSelector"] = {"matchLabels": self.label}
        self.admission = client.AdmissionregistrationV1Api(api)
        self.admission.create_mutating_webhook_configuration(self.body)

    def pod(self, name: str, annotations: dict | None = None, plain: bool = False) -> dict:
        pod = annotated_pod(name, annotations)
        if plain:
            pod["metadata"]["annotations"] = {"team": "a"}
        pod["metadata"]["labels"] = dict(self.label)
        return pod

    def wait_until_called(self, namespace: str) -> None:
        wait_until(lambda: self.core.create_namespaced_pod(namespace, self.pod(f"probe-{uuid.uuid4().hex[:8]}"),
                                                           dry_run="All").spec.init_containers,
                   30, interval=0.2, what="the API server to call the counted registration")

    def close(self) -> None:
        self.admission.delete_mutating_webhook_configuration(self.body["metadata"]["name"])


@pytest.fixture
def counted(api, core, counting_server):
    registration = Counted(api, core, counting_server)
    yield registration
    registration.close()


def isolated(core, namespace: str) -> str:
    """Out of the session registration's reach (and so of its injection), in reach of `counted`."""
    core.patch_namespace(namespace, {"metadata": {"labels": {ISOLATED: "counted"}}})
    return namespace


def test_unannotated_pod_never_reaches_the_webhook(api, core, counted, namespace):
    namespace = isolated(core, namespace)
    counted.wait_until_called(namespace)
    before = counted.server.admissions()
    stored = as_dict(api, core.create_namespaced_pod(namespace, counted.pod("plain", plain=True)))
    assert "initContainers" not in stored["spec"]
    assert stored["spec"]["containers"][0]["command"] == ["/app/server"]
    disabled = counted.pod("off", {"restart-process.dev/enabled": "false"})
    assert not core.create_namespaced_pod(namespace, disabled).spec.init_containers
    assert counted.server.admissions() == before  # matchConditions filtered both server-side

    core.create_namespaced_pod(namespace, counted.pod("opted-in"))  # control: the counter does move
    assert counted.server.admissions() == before + 1


def test_injected_pod_passes_pod_security_restricted(api, core, registered, namespace):
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    pod = annotated_pod("restricted", securityContext=RESTRICTED_CONTAINER_SECURITY)
    pod["spec"]["securityContext"] = RESTRICTED_POD_SECURITY
    stored = core.create_namespaced_pod(namespace, pod)
    assert stored.spec.init_containers[0].name == "restart-process-install"

    # Control: PodSecurity really enforces here; an init container without those settings is refused.
    bad = annotated_pod("not-restricted", securityContext=RESTRICTED_CONTAINER_SECURITY)
    bad["spec"]["securityContext"] = RESTRICTED_POD_SECURITY
    bad["spec"]["initContainers"] = [{"name": "setup", "image": "busybox", "command": ["true"]}]
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, bad)
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body


def test_misconfiguration_admits_the_pod_with_our_warning(api, core, registered, namespace):
    pod = annotated_pod("typo", {"restart-process.dev/containers": "apps"})
    del pod["metadata"]["annotations"]["restart-process.dev/enabled"]
    created, status, headers = core.create_namespaced_pod_with_http_info(namespace, pod)
    assert status == 201
    assert not created.spec.init_containers  # admitted unchanged
    # Warning: 299 - "<text>", with the text's quotes escaped as the HTTP header grammar demands.
    warning = headers.get("Warning", "").replace('\\"', '"')
    assert warning.startswith("299 - ")
    assert 'restart-process: restart-process.dev/containers: no container named "apps"' in warning, warning


def test_server_side_dry_run_returns_the_mutated_pod_and_stores_nothing(api, core, registered, namespace):
    returned = core.create_namespaced_pod(namespace, annotated_pod("dry"), dry_run="All")
    assert returned.spec.init_containers[0].name == "restart-process-install"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("dry", namespace)
    assert missing.value.status == 404


def test_kube_system_is_never_touched(api, core, counted, namespace):
    namespace = isolated(core, namespace)
    counted.wait_until_called(namespace)
    before = counted.server.admissions()
    name = f"system-{uuid.uuid4().hex[:6]}"
    stored = core.create_namespaced_pod("kube-system", counted.pod(name))
    try:
        assert not stored.spec.init_containers and stored.spec.containers[0].command == ["/app/server"]
        assert counted.server.admissions() == before
    finally:
        core.delete_namespaced_pod(name, "kube-system", grace_period_seconds=0)
    core.create_namespaced_pod(namespace, counted.pod("elsewhere"))  # control: the same pod elsewhere is counted
    assert counted.server.admissions() == before + 1


def test_failure_policy_ignore_fails_open_and_fail_rejects(api, core, registered, namespace):
    """The trade-off, documented: with the webhook down, Ignore admits unmutated, Fail refuses the pod."""
    core.patch_namespace(namespace, {"metadata": {"labels": {ISOLATED: "failure-policy"}}})
    server = WebhookServer().start()
    admission = client.AdmissionregistrationV1Api(api)
    body = webhook_configuration(server.client_config(), name="restart-process-failure-policy",
                                 namespace_selector_extra=[{"key": ISOLATED, "operator": "In",
                                                            "values": ["failure-policy"]}])
    admission.create_mutating_webhook_configuration(body)
    try:
        wait_for_mutation(core, namespace)
        server.stop()

        opened = core.create_namespaced_pod(namespace, annotated_pod("while-down"))
        assert not opened.spec.init_containers  # admitted, unmutated: fail open

        admission.patch_mutating_webhook_configuration(
            body["metadata"]["name"], [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}])
        def refused() -> str | None:  # the API server picks up configuration changes within a moment
            try:
                core.create_namespaced_pod(namespace, annotated_pod(f"p-{uuid.uuid4().hex[:6]}"), dry_run="All")
            except ApiException as error:
                return error.body
            return None

        body_of_refusal = wait_until(refused, 30, interval=0.2, what="failurePolicy: Fail to take effect")
        assert "failed calling webhook" in body_of_refusal and "inject.restart-process.dev" in body_of_refusal
    finally:
        server.close()
        admission.delete_mutating_webhook_configuration(body["metadata"]["name"])


def test_deployment_pods_are_mutated_through_the_controller_manager(api, core, registered, namespace):
    apps = client.AppsV1Api(api)
    template = annotated_pod("ignored")
    del template["metadata"]["name"]
    template["metadata"]["labels"] = {"app": "web"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": template["metadata"], "spec": template["spec"]}},
    })
    pods = wait_until(lambda: len(found := core.list_namespaced_pod(namespace, label_selector="app=web").items) == 2
                      and found, 60, interval=0.2, what="the controller manager to create two pods")
    for pod in pods:
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.spec.init_containers[0].name == "restart-process-install"
        assert pod.spec.containers[0].command[:2] == ["/restart-process/restart-wrapper", "run"]
