"""Where the cluster's local dev registry is, from inside the cluster (KEP-1755; a shell).

kind's local-registry recipe, ctlptl, k3d and minikube publish ConfigMap
`kube-public/local-registry-hosting` with `localRegistryHosting.v1`: `host` is how images name
the registry (`localhost:5001`), `hostFromClusterNetwork` how a pod reaches it
(`kind-registry:5000`). The webhook runs in a pod, so that is the alias it needs.
"""

from __future__ import annotations

import asyncio
import logging

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger("restart_process.localregistry")

NAMESPACE, NAME, KEY = "kube-public", "local-registry-hosting", "localRegistryHosting.v1"


def aliases_from(data: dict | None) -> dict[str, str]:
    """{host: hostFromClusterNetwork}, or {} when the ConfigMap says nothing usable (pure)."""
    try:
        hosting = yaml.safe_load((data or {}).get(KEY) or "") or {}
    except yaml.YAMLError:
        return {}
    if not isinstance(hosting, dict):
        return {}
    host, inside = hosting.get("host"), hosting.get("hostFromClusterNetwork")
    return {host: inside} if isinstance(host, str) and isinstance(inside, str) and host != inside else {}


def discover(api: client.ApiClient) -> dict[str, str]:
    try:
        config_map = client.CoreV1Api(api).read_namespaced_config_map(NAME, NAMESPACE)
    except ApiException as error:
        if error.status not in (403, 404):
            raise
        return {}
    return aliases_from(config_map.data)


async def keep_discovering(api: client.ApiClient, aliases: dict[str, str], configured: dict[str, str],
                           interval: float) -> None:
    """Refresh `aliases` (a RegistryClient's, shared) from the ConfigMap; configured aliases win."""
    while True:
        try:
            found = await asyncio.to_thread(discover, api)
            merged = {**found, **configured}
            if merged != aliases:
                log.info("registry aliases", extra={"fields": {"aliases": merged}})
                aliases.clear()
                aliases.update(merged)
        except Exception:
            log.exception("reading kube-public/local-registry-hosting failed")
        await asyncio.sleep(interval)
