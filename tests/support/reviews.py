"""AdmissionReview bodies shaped exactly as kube-apiserver sends them."""

from __future__ import annotations

import base64
import json
import uuid

import jsonpatch


def pod_review(pod: dict, namespace: str = "default", operation: str = "CREATE", api_version: str = "admission.k8s.io/v1", dry_run: bool = False) -> dict:
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": _name(pod),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": pod,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def apply_response(pod: dict, response: dict) -> dict:
    """The pod as the apiserver would store it after applying our patch."""
    patch = response.get("patch")
    if patch is None:
        return pod
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(patch)))


def _name(pod: object) -> str:
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""
