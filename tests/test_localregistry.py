"""The local registry's ConfigMap (KEP-1755), read as the KEP describes it."""

from webhook.localregistry import aliases_from


def test_local_registry_hosting_is_read_as_kep_1755_describes_it():
    hosting = 'host: "localhost:5001"\nhostFromContainerRuntime: "kind-registry:5000"\nhostFromClusterNetwork: "kind-registry:5000"\n'
    assert aliases_from({"localRegistryHosting.v1": hosting}) == {"localhost:5001": "kind-registry:5000"}
    assert aliases_from({"localRegistryHosting.v1": 'host: "localhost:5001"\n'}) == {}
    assert aliases_from({"localRegistryHosting.v1": "[not: a mapping"}) == {}
    assert aliases_from(None) == {}
