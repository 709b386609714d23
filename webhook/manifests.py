"""Find the pods in a Kubernetes document: a Pod, a workload's pod template, or `List` items (pure)."""

from __future__ import annotations

from collections.abc import Callable

from .mutate import Mutation

# Where each workload keeps the template its pods are made from.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

# (pod-shaped dict, namespace) -> Mutation
PodTransform = Callable[[dict, "str | None"], Mutation]


def transform_document(document: dict, transform: PodTransform) -> tuple[dict, list[tuple[str, Mutation]]]:
    """Apply `transform` to every pod in the document; return the new document and, per pod,
    a label (`Kind/name`) with its Mutation. Documents without pods come back as they were."""
    results: list[tuple[str, Mutation]] = []
    return _walk(document, transform, results), results


def _walk(document: dict, transform: PodTransform, results: list) -> dict:
    kind = document.get("kind")
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    label = f"{kind}/{metadata.get('name') or metadata.get('generateName') or '?'}"
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in document):
        items = document.get("items")
        if not isinstance(items, list):
            return document
        walked = [_walk(item, transform, results) if isinstance(item, dict) else item for item in items]
        return {**document, "items": walked}
    if kind == "Pod":
        mutation = transform(document, metadata.get("namespace"))
        results.append((label, mutation))
        return mutation.pod
    path = TEMPLATE_PATHS.get(kind)
    template = _get(document, path) if path else None
    if not isinstance(template, dict):
        return document
    pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
    mutation = transform(pod, metadata.get("namespace"))
    results.append((label, mutation))
    if mutation.pod is pod:
        return document
    return _set(document, path, {**template, **mutation.pod})


def _get(document: dict, path: tuple[str, ...]):
    node = document
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _set(document: dict, path: tuple[str, ...], value) -> dict:
    """A copy of `document` with `value` at `path`, sharing every untouched branch."""
    head, *rest = path
    child = value if not rest else _set(document.get(head) or {}, tuple(rest), value)
    return {**document, head: child}

