"""The pods in a Kubernetes document: a Pod, a workload's pod template, or `List` items (pure).

`find_pods` says where they are; `replace_pods` puts mutated ones back, copy-on-write, so
every part of the document that did not change is shared with the input.
"""

from __future__ import annotations

from typing import NamedTuple

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


class FoundPod(NamedTuple):
    label: str  # Kind/name, for messages
    pod: dict  # a Pod, or {"metadata", "spec"} of a template
    namespace: str | None
    path: tuple  # keys and list indices from the document to the Pod or the template
    template: bool


def find_pods(document: dict) -> list[FoundPod]:
    found: list[FoundPod] = []
    _find(document, (), found)
    return found


def replace_pods(document: dict, replacements: list[tuple[FoundPod, dict]]) -> dict:
    """The document with each found pod replaced; pods that came back as they were are skipped."""
    for found, pod in replacements:
        if pod is found.pod:
            continue
        if found.template:
            template = _get(document, found.path)
            pod = {**template, **pod}
        document = _set(document, found.path, pod)
    return document


def _find(document: dict, path: tuple, found: list[FoundPod]) -> None:
    kind = document.get("kind")
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    label = f"{kind}/{metadata.get('name') or metadata.get('generateName') or '?'}"
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in document):
        items = document.get("items")
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    _find(item, (*path, "items", index), found)
        return
    if kind == "Pod":
        found.append(FoundPod(label, document, metadata.get("namespace"), path, False))
        return
    template_path = TEMPLATE_PATHS.get(kind)
    template = _get(document, template_path) if template_path else None
    if isinstance(template, dict):
        pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
        found.append(FoundPod(label, pod, metadata.get("namespace"), (*path, *template_path), True))


def _get(node, path: tuple):
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict):
            node = node.get(key)
        else:
            return None
    return node


def _set(node, path: tuple, value):
    """A copy of `node` with `value` at `path`, sharing every untouched branch."""
    if not path:
        return value
    head, *rest = path
    if isinstance(node, list):
        copied = list(node)
        copied[head] = _set(node[head], tuple(rest), value)
        return copied
    return {**node, head: _set(node.get(head) or {}, tuple(rest), value)}
