"""Delivering the wrapper as an image volume, against real kube-apiservers (v1.35): one as it comes
(ImageVolume on), one started with --feature-gates=ImageVolume=false; and the cluster's facts as
the webhook reads them (list-watch caches, /version, /metrics)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from webhook.clusterfacts import ClusterWatch
from webhook.registration import webhook_configuration

from .conftest import ISOLATED
from .test_admission_path import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, as_dict, run_inject
from tests.support.controlplane import ControlPlane
from tests.support.waiting import wait_until
from tests.support.webhook_server import WebhookServer, annotated_pod, wait_for_mutation

DELIVERY = "restart-process.dev/delivery"
STATUS = "restart-process.dev/injected"
IMAGE_VOLUME = {"name": "restart-process", "image": {"reference": "restart-process/restart-wrapper:0.1.0",
                                                     "pullPolicy": "IfNotPresent"}}


class FactsReadingWebhook:
    """`restart-process serve` with a kubeconfig, so that it reads the cluster (delivery auto), registered
    for the namespaces labelled ISOLATED=<label> only."""

    def __init__(self, api, core, plane: ControlPlane, label: str):
        self.api, self.core, self.label = api, core, label
        self.namespaces: list[str] = []  # made by namespace(), deleted by close()
        self.server = WebhookServer(f"--kubeconfig={plane.kubeconfig}", "--wrapper-image",
                                    IMAGE_VOLUME["image"]["reference"]).start()
        self.body = webhook_configuration(self.server.client_config(), name=f"restart-process-{label}",
                                          namespace_selector_extra=[{"key": ISOLATED, "operator": "In",
                                                                     "values": [label]}])
        client.AdmissionregistrationV1Api(api).create_mutating_webhook_configuration(self.body)
        wait_for_mutation(core, self.namespace())

    def namespace(self, labels: dict | None = None) -> str:
        name = f"d-{uuid.uuid4().hex[:10]}"
        self.core.create_namespace({"metadata": {"name": name, "labels": {ISOLATED: self.label, **(labels or {})}}})
        self.namespaces.append(name)
        return name

    def close(self) -> None:
        client.AdmissionregistrationV1Api(self.api).delete_mutating_webhook_configuration(self.body["metadata"]["name"])
        for name in self.namespaces:
            self.core.delete_namespace(name)
        assert self.server.close(), "the webhook did not stop on SIGTERM"


def create(core, namespace: str, pod: dict, dry_run: str | None = None) -> tuple[dict, str]:
    """The pod as stored (or as it would be), and the Warning header's text."""
    created, status, headers = core.create_namespaced_pod_with_http_info(namespace, pod, dry_run=dry_run)
    assert status in (200, 201)
    return client.ApiClient().sanitize_for_serialization(created), headers.get("Warning", "").replace('\\"', '"')


def delivery_of(pod: dict) -> dict:
    return json.loads(pod["metadata"]["annotations"][STATUS])["delivery"]


def pod_with_path(name: str, annotations: dict | None = None, **container) -> dict:
    """An opted-in pod that sets its PATH, so that no registry lookup (and no warning) is involved."""
    return annotated_pod(name, annotations, env=[{"name": "PATH", "value": "/bin"}], **container)


def restricted_pod(name: str, annotations: dict) -> dict:
    pod = pod_with_path(name, annotations, securityContext=RESTRICTED_CONTAINER_SECURITY)
    pod["spec"]["securityContext"] = RESTRICTED_POD_SECURITY
    return pod


def add_node(core, name: str, kubelet: str, runtime: str) -> None:
    """A Node object as a kubelet would report itself (no kubelet runs here: only the API object)."""
    core.create_node({"metadata": {"name": name}})
    core.patch_node_status(name, {"status": {"nodeInfo": {
        "kubeletVersion": kubelet, "containerRuntimeVersion": runtime, "machineID": "", "systemUUID": "",
        "bootID": "", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "", "operatingSystem": "linux",
        "architecture": "amd64"}}})


# --- the API server as it comes: ImageVolume on ---------------------------------------------------


@pytest.fixture(scope="module")
def webhook(api, core, control_plane):
    running = FactsReadingWebhook(api, core, control_plane, "delivery")
    yield running
    running.close()


def test_explicit_image_volume_is_stored_as_inject_renders_it(api, core, webhook, tmp_path):
    namespace = webhook.namespace()
    manifest = pod_with_path("iv", {DELIVERY: "image-volume"})
    stored, warning = create(core, namespace, manifest)
    spec = stored["spec"]
    assert not spec.get("initContainers") and not warning
    assert spec["volumes"] == [IMAGE_VOLUME, {"name": "restart-process-trigger", "emptyDir": {"sizeLimit": "1Mi"}}]
    app = spec["containers"][0]
    assert app["command"][:2] == ["/restart-process/restart-wrapper", "run"]
    assert {"name": "restart-process", "mountPath": "/restart-process", "readOnly": True} in app["volumeMounts"]
    assert {"name": "PATH", "value": "/restart-process/bin:/bin"} in app["env"]  # first: restart-on-sync
    assert delivery_of(stored) == {"mode": "image-volume", "reason": f"image-volume was asked for ({DELIVERY})"}

    # The same manifest through `restart-process inject`, defaulted by the same API server.
    offline = run_inject(manifest, tmp_path)
    rendered = as_dict(api, core.create_namespaced_pod("default", offline, dry_run="All"))
    assert stored["spec"] == rendered["spec"]
    assert stored["metadata"]["annotations"] == rendered["metadata"]["annotations"]


def test_auto_follows_the_nodes_as_they_come_and_go(core, webhook):
    """auto on this API server (1.35, gate on): the image volume once every node can mount one."""
    namespace = webhook.namespace()
    prefix = f"rp-{uuid.uuid4().hex[:6]}"

    def dry_run() -> tuple[dict, str]:
        pod, warning = create(core, namespace, pod_with_path(f"auto-{uuid.uuid4().hex[:6]}"), dry_run="All")
        assert not warning  # auto never warns: the status annotation says why
        return pod, delivery_of(pod)

    # The webhook reads the API server at start; until then auto cannot know either.
    pod, delivery = wait_until(lambda: (r := dry_run())[1]["reason"] != "auto: the API server's version is not known"
                               and r, 30, interval=0.2, what="the webhook to read the API server")
    assert delivery == {"mode": "init-container", "reason": "auto: no nodes are known"}
    assert pod["spec"]["initContainers"][0]["name"] == "restart-process-install"
    try:
        add_node(core, f"{prefix}-new", "v1.35.4", "containerd://2.1.4")
        pod, delivery = wait_until(lambda: (r := dry_run())[1]["mode"] == "image-volume" and r, 30, interval=0.2,
                                   what="the webhook to see a node that can mount image volumes")
        assert delivery["reason"] == "auto: API server v1.35.4 with ImageVolume on, every node able to mount image volumes"
        assert "initContainers" not in pod["spec"] and IMAGE_VOLUME in pod["spec"]["volumes"]

        add_node(core, f"{prefix}-old", "v1.35.4", "containerd://1.7.27")
        _, delivery = wait_until(lambda: (r := dry_run())[1]["mode"] == "init-container" and r, 30, interval=0.2,
                                 what="the webhook to see an old runtime")
        assert delivery["reason"] == (f'auto: node "{prefix}-old" runs containerd://1.7.27; image volumes need '
                                      "containerd 2.1+ or CRI-O 1.31+")

        core.patch_node_status(f"{prefix}-old", {"status": {"nodeInfo": {"containerRuntimeVersion": "cri-o://1.35.0",
                                                                         "kubeletVersion": "v1.34.2"}}})
        _, delivery = wait_until(lambda: "kubelet v1.34.2" in (r := dry_run())[1]["reason"] and r, 30, interval=0.2,
                                 what="the webhook to see the node's update")
        assert delivery["mode"] == "init-container"

        core.delete_node(f"{prefix}-old")
        wait_until(lambda: dry_run()[1]["mode"] == "image-volume", 30, interval=0.2,
                   what="the webhook to see the old node gone")
    finally:
        for name in (f"{prefix}-new", f"{prefix}-old"):
            try:
                core.delete_node(name)
            except ApiException:
                pass
    wait_until(lambda: dry_run()[1]["reason"] == "auto: no nodes are known", 30, interval=0.2,
               what="the webhook to see every node gone")


def test_a_restricted_namespace_admits_the_image_volume_on_1_35(core, webhook):
    """The published Pod Security Standards list no `image` volumes for "restricted", but since 1.33
    (kubernetes/kubernetes#130394) the PodSecurity plugin allows them: the injected pod is admitted."""
    namespace = webhook.namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    stored, warning = create(core, namespace, restricted_pod("iv", {DELIVERY: "image-volume"}))
    assert IMAGE_VOLUME in stored["spec"]["volumes"] and not stored["spec"].get("initContainers") and not warning

    # Control: PodSecurity really enforces "restricted" here; a hostPath volume is refused.
    refused = restricted_pod("host", {"restart-process.dev/enabled": "false"})
    refused["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": "/etc"}}]
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod(namespace, refused)
    assert denied.value.status == 403 and "violates PodSecurity" in denied.value.body


# --- an API server started with the ImageVolume gate off ------------------------------------------


@pytest.fixture(scope="module")
def gate_off():
    plane = ControlPlane(with_controller_manager=False,
                         extra_args={"kube-apiserver": ["--feature-gates=ImageVolume=false"]}).start()
    try:
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core = client.CoreV1Api(api)
        running = FactsReadingWebhook(api, core, plane, "gate-off")
        try:
            yield running
        finally:
            running.close()
    finally:
        plane.stop()


def test_with_the_gate_off_the_api_server_drops_an_image_volume_without_a_word(gate_off):
    """What v1.35.4 does when ImageVolume is off: after mutating admission, PrepareForCreate drops the
    `image` volume *and every mount of it*, and the pod is stored -- created, no warning -- with a
    command that points into a volume that is no longer there. Why an explicit image-volume must
    give way there."""
    core = gate_off.core
    namespace = gate_off.namespace()
    pod = {"metadata": {"name": "dropped"}, "spec": {
        "containers": [{"name": "app", "image": "app:dev", "command": ["/restart-process/restart-wrapper", "run", "--", "/app"],
                        "volumeMounts": [{"name": "restart-process", "mountPath": "/restart-process", "readOnly": True}]}],
        "volumes": [IMAGE_VOLUME]}}
    stored, warning = create(core, namespace, pod)
    assert stored["metadata"]["name"] == "dropped" and not warning
    assert "volumes" not in stored["spec"] and "volumeMounts" not in stored["spec"]["containers"][0]
    assert stored["spec"]["containers"][0]["command"][0] == "/restart-process/restart-wrapper"


def test_with_the_gate_off_explicit_image_volume_comes_as_the_init_container_with_a_warning(gate_off):
    core = gate_off.core
    namespace = gate_off.namespace()
    why = ("the API server's ImageVolume feature gate is off (it would drop the volume and leave the wrapped "
           "command pointing at nothing)")
    # The webhook reads /metrics at start; until then it does not know the gate either (and also gives way).
    wait_until(lambda: why in create(core, namespace, pod_with_path(f"p-{uuid.uuid4().hex[:6]}", {DELIVERY: "image-volume"}),
                                     dry_run="All")[1], 30, interval=0.2, what="the webhook to read the gate")
    stored, warning = create(core, namespace, pod_with_path("explicit", {DELIVERY: "image-volume"}))
    assert warning.startswith("299 - ")
    assert (f"restart-process: image-volume delivery was asked for ({DELIVERY}), but {why}; the wrapper comes by "
            "init container instead") in warning
    spec = stored["spec"]
    assert spec["initContainers"][0]["name"] == "restart-process-install"
    assert {"name": "restart-process", "emptyDir": {"sizeLimit": "16Mi"}} in spec["volumes"]
    assert {"name": "restart-process", "mountPath": "/restart-process", "readOnly": True} in \
        spec["containers"][0]["volumeMounts"]
    assert delivery_of(stored) == {"mode": "init-container", "reason": why}


# --- the facts, read as the webhook reads them ----------------------------------------------------


def test_cluster_facts_come_from_the_version_the_metrics_and_the_watches(api, core, namespace):
    watch = ClusterWatch(api, watch_seconds=5)  # short watches: resuming them is exercised too
    watch.start()
    try:
        watch.refresh_api_server()
        assert watch.facts.api_server_version == "v1.35.4" and watch.facts.image_volume_gate is True
        wait_until(lambda: namespace in watch.facts.pod_security, 10, interval=0.1, what="the namespace list")
        assert watch.facts.pod_security[namespace] == ""
        core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
        wait_until(lambda: watch.facts.pod_security.get(namespace) == "baseline", 10, interval=0.1,
                   what="the label change to be watched")
        before = watch.facts
        later = f"{namespace}-later"
        core.create_namespace({"metadata": {"name": later}})
        try:
            wait_until(lambda: later in watch.facts.pod_security, 15, interval=0.1,
                       what="a namespace created after a resumed watch")
        finally:
            core.delete_namespace(later)
        assert before.pod_security.get(later) is None  # published snapshots never change
    finally:
        watch.stop()


def test_a_namespace_not_yet_seen_is_read_once_and_only_where_it_matters(api, core, namespace, control_plane):
    """A user that may GET namespaces but not list or watch them: the watch fails, so the cache
    has only what `facts_for` read -- once. On a 1.35 API server the namespace's level cannot
    change the choice, and nothing is read."""
    getter = f"rp-namespace-getter-{uuid.uuid4().hex[:6]}"
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role({"metadata": {"name": getter},
                              "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]})
    rbac.create_cluster_role_binding({"metadata": {"name": getter},
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                  "name": getter},
                                      "subjects": [{"kind": "User", "name": getter}]})
    limited = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    limited.set_default_header("Impersonate-User", getter)
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    watch = ClusterWatch(limited)
    watch.start()
    try:
        # The API server's version not read yet: the level may matter, so it is read.
        facts = asyncio.run(watch.facts_for(namespace))
        assert facts.pod_security == {namespace: "restricted"}
        core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
        assert asyncio.run(watch.facts_for(namespace)).pod_security[namespace] == "restricted"  # not read again

        watch.refresh_api_server()  # v1.35.4: restricted allows image volumes, levels cannot matter
        other = f"{namespace}-other"
        core.create_namespace({"metadata": {"name": other}})
        try:
            assert other not in asyncio.run(watch.facts_for(other)).pod_security
        finally:
            core.delete_namespace(other)
    finally:
        watch.stop()
        rbac.delete_cluster_role_binding(getter)
        rbac.delete_cluster_role(getter)


def test_metrics_that_cannot_be_read_leave_the_gate_to_its_versions_default(api, control_plane, caplog):
    """A user that may not GET /metrics: the gate is unknown, taken as the version's default (on in
    1.35), and that is logged once, not at every re-read."""
    limited = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    limited.set_default_header("Impersonate-User", f"rp-nobody-{uuid.uuid4().hex[:6]}")
    watch = ClusterWatch(limited)
    with caplog.at_level(logging.WARNING, logger="restart_process.clusterfacts"):
        watch.refresh_api_server()
        watch.refresh_api_server()
    assert watch.facts.api_server_version == "v1.35.4"  # /version is public
    assert watch.facts.image_volume_gate is None and watch.facts.gate_on is True
    unreadable = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(unreadable) == 1 and "403" in unreadable[0].fields["why"]
