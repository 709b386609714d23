"""The MutatingWebhookConfiguration that points the API server at us (pure).

`matchConditions` filter on the opt-in annotations server-side, so the API server never
calls the webhook for a pod that did not opt in (or was already injected): annotations
cannot be selected by objectSelector, and a webhook called for every pod in the cluster
adds latency and a failure mode to all of them.
"""

from __future__ import annotations

import base64

from .contract import CONTAINERS, DEFAULT_PREFIX, ENABLED, IMAGES
from .names import STATUS

NAME = "restart-process-webhook"
WEBHOOK_NAME = "inject.restart-process.dev"


def opt_in_expression(prefix: str = DEFAULT_PREFIX) -> str:
    """CEL: the pod opted in, is not switched off, and was not injected already."""
    def key(k: str) -> str:
        return f"'{prefix}/{k}'"

    annotations = "object.metadata.annotations"
    return (
        f"has(object.metadata.annotations) && !({key(STATUS)} in {annotations}) && ("
        f"({key(ENABLED)} in {annotations} && {annotations}[{key(ENABLED)}] != 'false') || "
        f"{key(CONTAINERS)} in {annotations} || {key(IMAGES)} in {annotations})"
    )


def webhook_configuration(
    client_config: dict,
    prefix: str = DEFAULT_PREFIX,
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
    excluded_namespaces: tuple[str, ...] = ("kube-system", "kube-public"),
    name: str = NAME,
    namespace_selector_extra: list[dict] | None = None,
) -> dict:
    """`client_config` is `{"url": ...}` or `{"service": {...}}`; add `caBundle` with `with_ca_bundle`."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client_config,
                "rules": [
                    {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                     "scope": "Namespaced"}
                ],
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "timeoutSeconds": timeout_seconds,
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",  # safe: the mutation is idempotent
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(excluded_namespaces)},
                        *(namespace_selector_extra or []),
                    ]
                },
                "matchConditions": [{"name": "opted-in", "expression": opt_in_expression(prefix)}],
            }
        ],
    }


def with_ca_bundle(client_config: dict, ca_pem: bytes) -> dict:
    return {**client_config, "caBundle": base64.b64encode(ca_pem).decode()}
