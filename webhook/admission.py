"""AdmissionReview in, AdmissionReview out (pure). The only place a response is built.

Validation of the review's shape raises `BadReview` (the HTTP shell answers 400).
Anything that goes wrong *after* the review is known to be valid fails open: the pod
is allowed unchanged, with a warning, and the error is handed back for logging.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from .config import InjectorConfig
from .mutate import INJECTED, SKIPPED, mutate_pod
from .patch import diff

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
ERROR = "error"


class BadReview(ValueError):
    """The body is not an AdmissionReview we can answer."""


@dataclass(frozen=True)
class Outcome:
    """What happened, for the log line and the metrics."""

    uid: str
    outcome: str
    namespace: str | None = None
    pod: str | None = None
    wrapped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: BaseException | None = None


def pod_under_review(body: object) -> tuple[dict | None, str | None]:
    """(pod, namespace) when this review is a Pod CREATE we may mutate, else (None, namespace).
    Raises BadReview, like `review`, for bodies that are not AdmissionReviews."""
    return _pod_of(_validated_request(body))


def review(body: object, config: InjectorConfig, image_configs: dict | None = None) -> tuple[dict, Outcome]:
    """Answer one AdmissionReview. `image_configs`: the registry's answers, if a lookup was made."""
    request = _validated_request(body)
    uid = request["uid"]
    pod, namespace = _pod_of(request)
    if pod is None:
        return _response(body, uid), Outcome(uid, SKIPPED, namespace)

    name = _pod_name(pod)
    try:
        mutation = mutate_pod(pod, config, namespace, image_configs)
        patch = diff(pod, mutation.pod) if mutation.pod is not pod else []
    except Exception as error:  # our bug must never block a pod: fail open, loudly
        warning = "restart-process: internal error, pod admitted unchanged; see the webhook's log"
        return _response(body, uid, warnings=[warning]), Outcome(uid, ERROR, namespace, name, (), (warning,), error)

    response = _response(body, uid, patch=patch, warnings=list(mutation.warnings))
    return response, Outcome(uid, mutation.outcome, namespace, name, mutation.wrapped, mutation.warnings)


def _validated_request(body: object) -> dict:
    if not isinstance(body, dict):
        raise BadReview("expected a JSON object (an AdmissionReview)")
    if body.get("kind") != "AdmissionReview":
        raise BadReview('expected kind "AdmissionReview"')
    if body.get("apiVersion") not in API_VERSIONS:
        raise BadReview(f"expected apiVersion {' or '.join(API_VERSIONS)}")
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadReview("expected a request object")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("expected request.uid to be a non-empty string")
    return request


def _pod_of(request: dict) -> tuple[dict | None, str | None]:
    namespace = request.get("namespace") if isinstance(request.get("namespace"), str) else None
    pod = request.get("object")
    return (pod if _is_pod_create(request) and isinstance(pod, dict) else None), namespace


def _is_pod_create(request: dict) -> bool:
    kind = request.get("kind") or {}
    resource = request.get("resource") or {}
    return (
        request.get("operation") == "CREATE"
        and isinstance(kind, dict)
        and kind.get("group", "") == ""
        and kind.get("kind") == "Pod"
        and isinstance(resource, dict)
        and resource.get("resource", "pods") == "pods"
        and not request.get("subResource")
    )


def _pod_name(pod: dict) -> str | None:
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return name if isinstance(name, str) else None


def _response(body: dict, uid: str, patch: list | None = None, warnings: list[str] | None = None) -> dict:
    response: dict = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    # Answer in the version we were asked in (v1beta1 clients get v1beta1).
    return {"apiVersion": body["apiVersion"], "kind": "AdmissionReview", "response": response}


__all__ = ["BadReview", "Outcome", "review", "INJECTED", "SKIPPED", "ERROR"]
