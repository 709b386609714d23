"""Registry credentials from a pod's imagePullSecrets and its service account's (a shell).

Off unless the operator turns it on (`--registry-credentials`), because it needs RBAC to read
Secrets in every namespace where pods opt in. Reads only the Secrets the pod itself names.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

from kubernetes import client
from kubernetes.client.rest import ApiException

from .images import Credential

log = logging.getLogger("restart_process.pullsecrets")


class PullSecrets:
    def __init__(self, api: client.ApiClient):
        self.core = client.CoreV1Api(api)

    async def for_pod(self, pod: dict, namespace: str | None, deadline: float | None = None) -> tuple[Credential, ...]:
        """`deadline`: a time.monotonic() by which every read has ended (TimeoutError after it), so
        the thread that reads does not outlive the pod's lookup by more than a moment either."""
        return await asyncio.to_thread(self._read, pod, namespace, deadline)

    def _read(self, pod: dict, namespace: str | None, deadline: float | None = None) -> tuple[Credential, ...]:
        def remaining() -> float | None:  # each request's timeout: what is left of the pod's deadline
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the pod's lookup deadline passed while reading its pull secrets")
            return left

        spec = pod.get("spec") or {}
        namespace = (pod.get("metadata") or {}).get("namespace") or namespace
        if not namespace:
            return ()
        names = [s.get("name") for s in spec.get("imagePullSecrets") or [] if isinstance(s, dict)]
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        try:
            sa = self.core.read_namespaced_service_account(account, namespace, _request_timeout=remaining())
            names += [ref.name for ref in sa.image_pull_secrets or []]
        except ApiException as error:
            if error.status not in (403, 404):
                raise
        credentials: list[Credential] = []
        for name in dict.fromkeys(n for n in names if n):
            try:
                secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=remaining())
            except ApiException as error:
                if error.status in (403, 404):
                    log.info("cannot read pull secret %s/%s (%s)", namespace, name, error.status)
                    continue
                raise
            credentials += parse_docker_config(secret.type, secret.data or {})
        return tuple(credentials)


def parse_docker_config(secret_type: str | None, data: dict[str, str]) -> list[Credential]:
    """kubernetes.io/dockerconfigjson ({"auths": {...}}) or the older kubernetes.io/dockercfg."""
    try:
        if ".dockerconfigjson" in data:
            auths = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        elif ".dockercfg" in data:
            auths = json.loads(base64.b64decode(data[".dockercfg"]))
        else:
            return []
    except (ValueError, AttributeError):
        return []
    found = []
    for registry, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        username, password = entry.get("username"), entry.get("password")
        if (not username or password is None) and entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
        if username:
            found.append(Credential(registry, username, password or ""))
    return found
