"""Choosing how the wrapper reaches a pod: each condition of `auto` failing alone, each explicit
case, and how the mutation follows the choice (and what the pod already holds)."""

import dataclasses

import pytest
import yaml

from webhook.clusterfacts import enforce_level, gate_from_metrics, node_facts
from webhook.config import InjectorConfig
from webhook.contract import InvalidValue, parse_delivery
from webhook.delivery import ClusterFacts, Delivery, NodeFacts, choose_delivery, parse_version
from webhook.mutate import mutate_pod

from tests.support.golden import GOLDEN, run_inject

IMAGE_VOLUME, INIT_CONTAINER, AUTO = Delivery.IMAGE_VOLUME, Delivery.INIT_CONTAINER, Delivery.AUTO
GOOD_NODE = NodeFacts("node-a", "v1.35.4", "containerd://2.1.4")
# A cluster that takes image volumes: every condition of auto holds, for namespace "dev".
ABLE = ClusterFacts("v1.35.4", True, (GOOD_NODE, NodeFacts("node-b", "v1.35.0", "cri-o://1.31.0")),
                    {"dev": "baseline", "locked": "restricted"})


def able(**changes) -> ClusterFacts:
    return dataclasses.replace(ABLE, **changes)


def test_auto_takes_the_image_volume_when_everything_says_yes():
    choice = choose_delivery(AUTO, ABLE, "dev")
    assert choice.delivery == IMAGE_VOLUME and choice.warning is None
    assert choice.reason == "auto: API server v1.35.4 with ImageVolume on, every node able to mount image volumes"


def test_windows_nodes_do_not_count():
    """Windows pods are never wrapped, so a Windows node (whatever its runtime) never runs an image volume of ours."""
    windows = NodeFacts("win", "v1.35.4", "containerd://1.7.20", "windows")
    assert choose_delivery(AUTO, able(nodes=(GOOD_NODE, windows)), "dev").delivery == IMAGE_VOLUME
    assert choose_delivery(AUTO, able(nodes=(windows,)), "dev").reason == "auto: no nodes are known"


@pytest.mark.parametrize("facts, namespace, why", [
    (able(api_server_version=None), "dev", "version is not known"),
    (able(api_server_version="v1.34.2"), "dev", "API server is v1.34.2"),
    (able(image_volume_gate=False), "dev", "ImageVolume feature gate is off"),
    (able(nodes=()), "dev", "no nodes are known"),
    (able(nodes=(GOOD_NODE, NodeFacts("old", "v1.35.4", "containerd://1.7.27"))), "dev",
     'node "old" runs containerd://1.7.27'),
    (able(nodes=(NodeFacts("crio", "v1.35.4", "cri-o://1.30.9"),)), "dev", 'node "crio" runs cri-o://1.30.9'),
    (able(nodes=(NodeFacts("docker", "v1.35.4", "docker://28.0.1"),)), "dev", 'node "docker" runs docker://28.0.1'),
    (able(nodes=(NodeFacts("blank", "v1.35.4", ""),)), "dev", 'node "blank" runs an unknown runtime'),
    (able(nodes=(GOOD_NODE, NodeFacts("skewed", "v1.34.3", "containerd://2.1.4"))), "dev",
     'node "skewed" runs kubelet v1.34.3, whose ImageVolume gate is off by default before 1.35'),
], ids=["version-unknown", "version-old", "gate-off", "no-nodes", "old-containerd", "old-cri-o", "docker",
        "runtime-unknown", "old-kubelet"])
def test_auto_falls_back_silently_when_one_condition_fails(facts, namespace, why):
    choice = choose_delivery(AUTO, facts, namespace)
    assert choice.delivery == INIT_CONTAINER and choice.warning is None  # the status annotation says why
    assert choice.reason.startswith("auto: ") and why in choice.reason, choice.reason


@pytest.mark.parametrize("namespace", ["locked", "created-just-now"])
def test_auto_on_1_35_does_not_depend_on_the_namespace(namespace):
    """Pod Security "restricted" allows image volumes from 1.33 (kubernetes/kubernetes#130394; the real
    v1.35.4 API server admits such a pod, tests/apiserver/test_delivery.py), so neither a restricted
    namespace nor one not yet seen stands in the way, and neither is read."""
    assert not ABLE.namespaces_matter
    assert choose_delivery(AUTO, ABLE, namespace).delivery == IMAGE_VOLUME


def test_a_gate_that_metrics_do_not_show_is_its_versions_default():
    assert choose_delivery(AUTO, able(image_volume_gate=None), "dev").delivery == IMAGE_VOLUME  # 1.35: on
    assert able(image_volume_gate=None, api_server_version="v1.34.2").gate_on is False
    assert able(image_volume_gate=None, api_server_version=None).gate_on is None
    assert able(image_volume_gate=True, api_server_version="v1.33.1").gate_on is True  # turned on by hand


def test_init_container_is_always_the_init_container():
    for facts in (ABLE, None, ClusterFacts()):
        choice = choose_delivery(INIT_CONTAINER, facts, "dev")
        assert choice.delivery == INIT_CONTAINER and choice.warning is None


def test_offline_auto_is_the_init_container_and_image_volume_is_taken_at_its_word():
    assert choose_delivery(AUTO, None, "dev").delivery == INIT_CONTAINER
    choice = choose_delivery(IMAGE_VOLUME, None, None)
    assert choice.delivery == IMAGE_VOLUME and choice.warning is None


@pytest.mark.parametrize("facts", [
    ABLE,
    able(nodes=()),  # the nodes are the operator's word
    able(nodes=(NodeFacts("old", "v1.33.0", "containerd://1.7.27"),)),
    able(image_volume_gate=None),  # 1.35: on by default
    able(image_volume_gate=True, api_server_version="v1.33.1"),
], ids=["able", "no-nodes", "old-node", "gate-default-on", "gate-on-before-1.35"])
def test_explicit_image_volume_is_honoured_where_the_api_server_takes_it(facts):
    choice = choose_delivery(IMAGE_VOLUME, facts, "dev", "restart-process.dev/delivery")
    assert choice.delivery == IMAGE_VOLUME and choice.warning is None
    assert "restart-process.dev/delivery" in choice.reason


def test_explicit_image_volume_in_a_namespace_of_unknown_level_is_honoured():
    """A namespace we could not read: Pod Security may refuse the pod, which is loud -- unlike a dropped volume."""
    old = able(api_server_version="v1.32.5")
    assert old.namespaces_matter and choose_delivery(IMAGE_VOLUME, old, "unread").delivery == IMAGE_VOLUME
    assert choose_delivery(IMAGE_VOLUME, old, "dev").delivery == IMAGE_VOLUME  # baseline allows them
    assert choose_delivery(IMAGE_VOLUME, ABLE, "locked").delivery == IMAGE_VOLUME  # 1.33+: restricted does too


DROPPED = " (it would drop the volume and leave the wrapped command pointing at nothing)"


@pytest.mark.parametrize("facts, namespace, why", [
    (able(image_volume_gate=False), "dev", "the API server's ImageVolume feature gate is off" + DROPPED),
    (able(image_volume_gate=None, api_server_version="v1.34.2"), "dev",
     "the API server's ImageVolume feature gate is off by default in v1.34.2" + DROPPED),
    (ClusterFacts(), "dev", "the API server's version is not known, so neither is its ImageVolume feature gate"),
    (able(api_server_version="v1.32.5"), "locked",  # gate turned on by hand
     'namespace "locked" enforces Pod Security "restricted", which allows no image volumes before Kubernetes 1.33 '
     "(the pod would be rejected)"),
], ids=["gate-off", "gate-off-by-default", "nothing-known", "restricted-before-1.33"])
def test_explicit_image_volume_gives_way_with_a_warning_where_the_pod_would_break_or_be_rejected(facts, namespace, why):
    choice = choose_delivery(IMAGE_VOLUME, facts, namespace, "restart-process.dev/delivery")
    assert choice.delivery == INIT_CONTAINER
    assert choice.warning == (f"image-volume delivery was asked for (restart-process.dev/delivery), but {why}; "
                              "the wrapper comes by init container instead")


@pytest.mark.parametrize("text, version", [("v1.35.4", (1, 35)), ("1.31.0-gke.1", (1, 31)), ("v1.36.0+k3s1", (1, 36)),
                                           ("2.1.4", (2, 1)), ("v2", None), ("", None), (None, None), ("x1.2", None)])
def test_versions(text, version):
    assert parse_version(text) == version


def test_the_annotation_takes_three_values():
    assert [parse_delivery(d) for d in ("auto", "image-volume", "init-container")] == list(Delivery)
    for bad in ("volume", "Image-Volume", "", "image_volume"):
        with pytest.raises(InvalidValue, match='expected "auto", "image-volume" or "init-container"'):
            parse_delivery(bad)


# --- the mutation follows the choice -------------------------------------------------------------

def pod(annotations=None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "dev",
                         "annotations": {"restart-process.dev/enabled": "true", **(annotations or {})}},
            "spec": {"containers": [{"name": "app", "image": "app:dev", "command": ["/app"],
                                     "env": [{"name": "PATH", "value": "/bin"}]}], **spec}}


def test_the_annotation_wins_over_the_servers_setting():
    config = InjectorConfig(delivery=IMAGE_VOLUME)
    by_server = mutate_pod(pod(), config, facts=ABLE)
    by_pod = mutate_pod(pod({"restart-process.dev/delivery": "init-container"}), config, facts=ABLE)
    assert by_server.delivery == IMAGE_VOLUME and "initContainers" not in by_server.pod["spec"]
    assert by_pod.delivery == INIT_CONTAINER and by_pod.pod["spec"]["initContainers"][0]["name"] == "restart-process-install"
    assert '"mode":"init-container"' in by_pod.pod["metadata"]["annotations"]["restart-process.dev/injected"]


def test_the_image_volume_uses_the_wrapper_image_and_its_pull_policy():
    config = InjectorConfig(wrapper_image="registry.example/rw:1", wrapper_image_pull_policy="Always")
    mutation = mutate_pod(pod({"restart-process.dev/delivery": "image-volume"}), config)
    assert mutation.pod["spec"]["volumes"][0] == {
        "name": "restart-process", "image": {"reference": "registry.example/rw:1", "pullPolicy": "Always"}}


def test_a_spec_copied_from_a_pod_with_the_init_container_keeps_it():
    """Our emptyDir without our install container would stay empty; an image volume cannot be installed into."""
    injected = mutate_pod(pod(), InjectorConfig()).pod
    copied = {**injected, "metadata": {**injected["metadata"], "annotations": {"restart-process.dev/containers": "app"}}}
    copied["spec"] = {**copied["spec"], "containers": [{"name": "app", "image": "app:dev", "command": ["/app"],
                                                        "env": [{"name": "PATH", "value": "/bin"}]}]}
    again = mutate_pod(copied, InjectorConfig(delivery=IMAGE_VOLUME), facts=ABLE)
    assert again.delivery == INIT_CONTAINER and not again.warnings
    assert [c["name"] for c in again.pod["spec"]["initContainers"]] == ["restart-process-install"]
    assert again.pod["spec"]["volumes"] == injected["spec"]["volumes"]


def test_a_spec_copied_from_a_pod_with_the_image_volume_keeps_it():
    injected = mutate_pod(pod({"restart-process.dev/delivery": "image-volume"}), InjectorConfig()).pod
    copied = {**injected, "metadata": {**injected["metadata"], "annotations": {"restart-process.dev/containers": "app"}}}
    copied["spec"] = {**copied["spec"], "containers": [{"name": "app", "image": "app:dev", "command": ["/app"],
                                                        "env": [{"name": "PATH", "value": "/bin"}]}]}
    again = mutate_pod(copied, InjectorConfig(delivery=INIT_CONTAINER))
    assert again.delivery == IMAGE_VOLUME and "initContainers" not in again.pod["spec"]
    assert again.pod["spec"]["volumes"] == injected["spec"]["volumes"]


def test_an_init_container_under_our_name_is_in_the_way_only_of_the_init_container():
    theirs = [{"name": "restart-process-install", "image": "other:1", "command": ["/setup"]}]
    by_volume = mutate_pod(pod({"restart-process.dev/delivery": "image-volume"}, initContainers=theirs), InjectorConfig())
    assert by_volume.delivery == IMAGE_VOLUME and by_volume.pod["spec"]["initContainers"] == theirs
    by_init = mutate_pod(pod({"restart-process.dev/delivery": "init-container"}, initContainers=theirs), InjectorConfig())
    assert by_init.outcome == "invalid" and 'init container named "restart-process-install"' in by_init.warnings[0]


def test_a_volume_under_our_name_is_in_the_way_of_the_image_volume_too():
    theirs = [{"name": "restart-process", "configMap": {"name": "x"}}]
    mutation = mutate_pod(pod({"restart-process.dev/delivery": "image-volume"}, volumes=theirs), InjectorConfig())
    assert mutation.outcome == "invalid" and 'a volume named "restart-process"' in mutation.warnings[0]


def test_inject_takes_the_flag_and_its_environment_variable(monkeypatch):
    code, out, err = run_inject(GOLDEN / "sync-tools-env.yaml", "--delivery=image-volume")
    spec = yaml.safe_load(out)["spec"]
    assert code == 0 and "initContainers" not in spec and spec["volumes"][0]["image"]["reference"]
    monkeypatch.setenv("RESTART_PROCESS_DELIVERY", "image-volume")
    code, out, err = run_inject(GOLDEN / "sync-tools-env.yaml")
    assert code == 0 and "initContainers" not in yaml.safe_load(out)["spec"]
    code, out, err = run_inject(GOLDEN / "sync-tools-env.yaml", "--delivery=volume")
    assert code == 2 and 'expected "auto", "image-volume" or "init-container"' in err


# --- what the shell reads, turned into facts -----------------------------------------------------

def test_the_gate_from_the_api_servers_metrics():
    metrics = ['# HELP kubernetes_feature_enabled [BETA] This metric records the data about the stage and '
               'enablement of a k8s feature.',
               'kubernetes_feature_enabled{name="ImageMaximumGCAge",stage=""} 1',
               'kubernetes_feature_enabled{name="ImageVolume",stage="BETA"} 0']
    assert gate_from_metrics(metrics) is False
    assert gate_from_metrics([metrics[1], 'kubernetes_feature_enabled{name="ImageVolume",stage="BETA"} 1']) is True
    assert gate_from_metrics(metrics[:2]) is None  # not there: the version's default applies
    assert gate_from_metrics(['kubernetes_feature_enabled{stage="BETA",name="ImageVolume"} 1']) is True


def test_node_and_namespace_objects_as_the_api_serves_them():
    node = {"metadata": {"name": "n"}, "status": {"nodeInfo": {"kubeletVersion": "v1.35.4",
                                                               "containerRuntimeVersion": "containerd://2.2.0"}}}
    assert node_facts(node) == NodeFacts("n", "v1.35.4", "containerd://2.2.0", "linux")
    node["status"]["nodeInfo"]["operatingSystem"] = "windows"
    assert node_facts(node).operating_system == "windows"
    assert node_facts({"metadata": {"name": "bare"}}) == NodeFacts("bare", "", "")
    assert enforce_level({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}) == "restricted"
    assert enforce_level({"metadata": {"name": "plain"}}) == ""


def test_a_webhook_that_does_not_read_the_cluster_says_so():
    unread = ClusterFacts(unread="the webhook does not read the cluster (--delivery=init-container)")
    assert choose_delivery(AUTO, unread, "dev").reason == f"auto: {unread.unread}"
    choice = choose_delivery(IMAGE_VOLUME, unread, "dev", "restart-process.dev/delivery")
    assert choice.delivery == INIT_CONTAINER and choice.warning == (
        "image-volume delivery was asked for (restart-process.dev/delivery), but the webhook does not read the "
        "cluster (--delivery=init-container), so it cannot tell whether the API server's ImageVolume feature gate "
        "is on; the wrapper comes by init container instead")
