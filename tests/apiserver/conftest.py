"""Session fixtures: one control plane, one real webhook server registered with it."""

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


@pytest.fixture(scope="session")
def registered(api, core, webhook_server):
    admission = client.AdmissionregistrationV1Api(api)
    body = webhook_configuration(
        webhook_server.client_config(),
        namespace_selector_extra=[{"key": ISOLATED, "operator": "DoesNotExist"}],
    )
    admission.create_mutating_webhook_configuration(body)
    wait_for_mutation(core, "default")
    yield body
    admission.delete_mutating_webhook_configuration(body["metadata"]["name"])


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
