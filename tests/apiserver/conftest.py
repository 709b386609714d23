"""Session fixtures: one control plane, one real webhook server registered with it; and the rule
that every test module leaves the cluster as it found it (`leaves_nothing_behind`)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from webhook.registration import webhook_configuration

from tests.support.controlplane import ControlPlane
from tests.support.webhook_server import WebhookServer, wait_for_mutation

# Namespaces with this label are left to tests that register a webhook of their own.
ISOLATED = "restart-process.dev/test-isolated"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/apiserver/" in str(item.fspath):
            item.add_marker(pytest.mark.apiserver)


@pytest.fixture(scope="session")
def control_plane():
    plane = ControlPlane().start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def api(control_plane):
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def webhook_server():
    server = WebhookServer().start()
    yield server
    server.close()


# What session fixtures create on the shared control plane: theirs to remove, at the end.
SESSION_OBJECTS: set[tuple[str, str]] = set()


@pytest.fixture(scope="session")
def registered(api, core, webhook_server):
    admission = client.AdmissionregistrationV1Api(api)
    body = webhook_configuration(
        webhook_server.client_config(),
        namespace_selector_extra=[{"key": ISOLATED, "operator": "DoesNotExist"}],
    )
    admission.create_mutating_webhook_configuration(body)
    SESSION_OBJECTS.add(("MutatingWebhookConfiguration", body["metadata"]["name"]))
    wait_for_mutation(core, "default")
    yield body
    admission.delete_mutating_webhook_configuration(body["metadata"]["name"])


def cluster_state(api) -> set[tuple[str, str]]:
    """What a test can leave behind for the rest of the session: cluster-wide objects, namespaces
    (one being deleted counts as gone), and what is put in the namespaces every test shares."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    found = {("Namespace", n.metadata.name) for n in core.list_namespace().items if not n.metadata.deletion_timestamp}
    listings = {"Node": core.list_node, "ClusterRole": rbac.list_cluster_role,
                "ClusterRoleBinding": rbac.list_cluster_role_binding,
                "MutatingWebhookConfiguration": admission.list_mutating_webhook_configuration,
                "ValidatingWebhookConfiguration": admission.list_validating_webhook_configuration}
    for kind, listing in listings.items():
        found |= {(kind, o.metadata.name) for o in listing().items}
    for shared in ("default", "kube-public"):
        found |= {("Pod", f"{shared}/{o.metadata.name}") for o in core.list_namespaced_pod(shared).items}
        found |= {("ConfigMap", f"{shared}/{o.metadata.name}") for o in core.list_namespaced_config_map(shared).items
                  if o.metadata.name != "kube-root-ca.crt"}  # the controller manager's, in every namespace
        found |= {("Secret", f"{shared}/{o.metadata.name}") for o in core.list_namespaced_secret(shared).items}
    return found


@pytest.fixture(scope="module", autouse=True)
def leaves_nothing_behind(request):
    """Each test module leaves the shared control plane as it found it (module fixtures included),
    so that no test sees another's objects, whatever the order: checked when the module ends."""
    api = request.getfixturevalue("api")
    before = cluster_state(api)
    yield
    left = cluster_state(api) - before - SESSION_OBJECTS
    assert not left, f"{request.node.name} left these on the shared control plane: {sorted(left)}"


@pytest.fixture
def namespace(core):
    """A fresh namespace per test (nothing deletes namespaces here, so names never repeat)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException:
        pass
