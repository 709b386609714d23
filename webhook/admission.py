"""AdmissionReview in, AdmissionReview out (pure). The only place a response is built.

    review = parse_review(body)          # once; BadReview -> the HTTP shell answers 400
    plan = plan_review(review, config)   # once; never raises
    ...the shell looks up plan.lookups, and takes the cluster's facts...
    answer, report = respond(review, plan, config, image_configs, facts)   # never raises

Anything that goes wrong after the review is known to be valid fails open: the pod is allowed
unchanged, with a warning, and the error is handed back for logging.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import orjson

from .config import InjectorConfig
from .delivery import ClusterFacts
from .mutate import ImageConfigs, apply
from .plan import Outcome, Plan, plan_pod

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
INTERNAL_ERROR = "restart-process: internal error, pod admitted unchanged; see the webhook's log"


class BadReview(ValueError):
    """The body is not an AdmissionReview we can answer."""


@dataclass(frozen=True)
class Review:
    """A validated AdmissionReview request."""

    api_version: str
    uid: str
    namespace: str | None
    pod: dict | None  # the object, when this is a Pod CREATE we may mutate


@dataclass(frozen=True)
class Failed:
    """Planning raised: our bug. Carried to `respond`, which fails open."""

    error: BaseException


@dataclass(frozen=True)
class Report:
    """What happened, for the log line and the metrics."""

    uid: str
    outcome: Outcome
    namespace: str | None = None
    pod: str | None = None
    wrapped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: BaseException | None = None
    delivery: str | None = None  # how the wrapper reached the pod, when injected


def parse_review(body: object) -> Review:
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
    namespace = request.get("namespace") if isinstance(request.get("namespace"), str) else None
    pod = request.get("object")
    return Review(body["apiVersion"], request["uid"], namespace,
                  pod if _is_pod_create(request) and isinstance(pod, dict) else None)


def plan_review(review: Review, config: InjectorConfig) -> Plan | Failed | None:
    """None when there is no pod to look at."""
    if review.pod is None:
        return None
    try:
        return plan_pod(review.pod, config, review.namespace)
    except Exception as error:  # our bug must never block a pod
        return Failed(error)


def respond(review: Review, plan: Plan | Failed | None, config: InjectorConfig,
            image_configs: ImageConfigs | None = None, facts: ClusterFacts | None = None) -> tuple[dict, Report]:
    """The AdmissionReview to send back. `image_configs`: the registry's answers for `plan.lookups`;
    `facts`: what the webhook knows of the cluster, for the delivery (None: nothing, as offline)."""
    if plan is None:
        return _response(review), Report(review.uid, Outcome.SKIPPED, review.namespace)
    name = _pod_name(review.pod)
    try:
        if isinstance(plan, Failed):
            raise plan.error
        mutation = apply(plan, config, image_configs, facts)
        patch = list(mutation.patch)
    except Exception as error:  # fail open, loudly
        return (_response(review, warnings=[INTERNAL_ERROR]),
                Report(review.uid, Outcome.ERROR, review.namespace, name, (), (INTERNAL_ERROR,), error))
    return (_response(review, patch, list(mutation.warnings)),
            Report(review.uid, mutation.outcome, review.namespace, name, mutation.wrapped, mutation.warnings,
                   delivery=mutation.delivery))


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


def _encode(patch: list) -> bytes:
    """Compact JSON; orjson is several times faster, and what it cannot encode (integers beyond
    64 bits, which only hand-made input carries) the standard encoder can."""
    try:
        return orjson.dumps(patch)
    except orjson.JSONEncodeError:
        return json.dumps(patch, separators=(",", ":")).encode()


def _pod_name(pod: dict) -> str | None:
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return name if isinstance(name, str) else None


def _response(review: Review, patch: list | None = None, warnings: list[str] | None = None) -> dict:
    response: dict = {"uid": review.uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(_encode(patch)).decode()
    if warnings:
        response["warnings"] = warnings
    # Answer in the version we were asked in (v1beta1 clients get v1beta1).
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}
