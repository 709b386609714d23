"""Session fixtures for the node tests: a control plane with a scheduler, a real node (containerd,
runc, kubelet), the local registry with the test images, and the real webhook registered.

Marker `node` (`pytest -m node`). They need root (containerd, mounts, cgroups); without it
they are skipped with that reason.

Every test runs on a containerd 2 node; a test marked `both_runtimes` runs on a containerd 1.6
node as well (its own control plane, node and webhook, after the containerd 2 ones stop): the
behaviours that depend on the runtime -- the default PATH, the image config, the trigger volume,
`kubectl cp`, and which delivery `auto` chooses.

The webhook reads its cluster as the chart's does (delivery `auto`): on containerd 2 the wrapper
comes as an image volume, on 1.6 by init container (`expected_delivery`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass

import pytest
from kubernetes import client, config

from webhook.registration import webhook_configuration

from tests.support.binaries import find_binary
from tests.support.webhook_server import WebhookServer, wait_for_mutation
from tests.support.live_update import Cluster
from tests.support.registry import Registry
from .images import ImageBuilder
from .node import CONTAINERD_1_6, CONTAINERD_2, RUNTIMES, Node, NodeControlPlane, clean_stale
from .pods import TIMINGS, timed

REQUIRED = ("unshare", "containerd", "containerd-shim-runc-v2", "runc", "ip")  # Debian's: containerd 1.6


def pytest_generate_tests(metafunc):
    if "node_runtime" in metafunc.fixturenames:
        runtimes = RUNTIMES if metafunc.definition.get_closest_marker("both_runtimes") else (CONTAINERD_2,)
        metafunc.parametrize("node_runtime", runtimes, indirect=True, scope="session")


@pytest.fixture(scope="session")
def node_runtime(request) -> str:
    """Which containerd the node runs (tests/node/node.py's RUNTIMES). pytest groups the tests by
    it, so each runtime's control plane, node and webhook run once, one runtime after the other."""
    return request.param


# What delivery `auto` must choose on each runtime: only containerd 2.1+ mounts image volumes.
DELIVERY = {CONTAINERD_2: "image-volume", CONTAINERD_1_6: "init-container"}


@pytest.fixture(scope="session")
def expected_delivery(node_runtime) -> str:
    return DELIVERY[node_runtime]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/node/" in str(item.fspath):
            item.add_marker(pytest.mark.node)
            item.add_marker(pytest.mark.slow)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "a node needs root (containerd, mounts, cgroups); `sudo make test` runs it"
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing or not os.path.exists("/usr/lib/cni/bridge"):
        return f"missing {missing or 'containernetworking-plugins'}: `make test` installs them (make packages)"
    return None


@dataclass
class TestImages:
    app: str
    scratch_app: str
    busybox: str
    busybox_without_env: str  # no Env in its config: the runtime's default PATH
    wrapper: str
    pause: str
    builder: ImageBuilder


@pytest.fixture(scope="session")
def node_registry():
    registry = Registry()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def node_images(node_registry, tmp_path_factory):
    with timed("images"):
        builder = ImageBuilder(node_registry.host, tmp_path_factory.mktemp("images"))
        return TestImages(app=builder.push_app(), scratch_app=builder.push_scratch_app(),
                          busybox=builder.push_busybox(), busybox_without_env=builder.push_busybox("busybox-no-env", []),
                          wrapper=builder.push_wrapper(),
                          pause=builder.push_pause(), builder=builder)


@pytest.fixture(scope="session")
def node_plane(node_runtime):
    why = _why_not()
    if why:
        pytest.skip(why)
    clean_stale()
    with timed(f"control plane ({node_runtime})"):
        plane = NodeControlPlane().start()
    yield plane
    with timed(f"control plane stop ({node_runtime})"):
        plane.stop()


@pytest.fixture(scope="session")
def node_api(node_plane):
    return config.new_client_from_config(config_file=str(node_plane.kubeconfig))


@pytest.fixture(scope="session")
def node_core(node_api):
    return client.CoreV1Api(node_api)


@pytest.fixture(scope="session")
def node(node_runtime, node_plane, node_registry, node_images):
    with timed(f"node Ready ({node_runtime})"):
        real = Node(node_plane, node_registry.host, node_images.pause, node_runtime).start()
    yield real
    with timed(f"node stop and clean-up ({node_runtime})"):
        real.stop()


@pytest.fixture(scope="session")
def node_webhook(node_plane, node_images):
    # --kubeconfig: it reads the cluster (version, ImageVolume gate, nodes) for delivery `auto`.
    server = WebhookServer("--wrapper-image", node_images.wrapper, "--kubeconfig", str(node_plane.kubeconfig)).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def node_registered(node_api, node_core, node_webhook, node):
    admission = client.AdmissionregistrationV1Api(node_api)
    body = webhook_configuration(node_webhook.client_config())
    admission.create_mutating_webhook_configuration(body)
    wait_for_mutation(node_core, "default", delivery=DELIVERY[node.runtime])
    yield body
    admission.delete_mutating_webhook_configuration(body["metadata"]["name"])


@pytest.fixture(scope="session")
def kubectl(node_plane) -> list[str]:
    return [str(find_binary("kubectl")), f"--kubeconfig={node_plane.kubeconfig}"]


def _namespace(core, kubectl, labels: dict) -> Cluster:
    name = f"n-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return Cluster(kubectl, name)


@pytest.fixture
def cluster(node_core, kubectl, node_registered):
    """A fresh namespace on the node, with the webhook registered; deleted afterwards (the
    namespace controller deletes its pods, which the kubelet stops)."""
    cluster = _namespace(node_core, kubectl, {})
    yield cluster
    node_core.delete_namespace(cluster.namespace)


@pytest.fixture
def restricted(node_core, kubectl, node_registered):
    """The same, enforcing Pod Security "restricted"."""
    cluster = _namespace(node_core, kubectl, {"pod-security.kubernetes.io/enforce": "restricted"})
    yield cluster
    node_core.delete_namespace(cluster.namespace)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line("node tests: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items()))
