"""The HTTP shell: FastAPI routes around `admission`, plus health, readiness and metrics.

Nothing a client sends may produce a 5xx: unreadable bodies get 400, oversized ones 413,
and an internal error on a valid review is answered `allowed: true` by `admission.respond`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from . import admission
from .logs import admission_line
from .config import InjectorConfig
from .delivery import Delivery
from .lookup import ImageLookup
from .plan import Outcome, Plan

# An AdmissionReview carries one object of at most ~3 MiB (the apiserver's request limit);
# twice that leaves room for encoding overhead and still refuses absurd bodies early.
MAX_BODY_BYTES = 6 * 1024 * 1024

log = logging.getLogger("restart_process.admission")


class _BodyTooLarge(Exception):
    pass


def create_app(config: InjectorConfig, ready: Callable[[], str | None] = lambda: None, lookup: ImageLookup | None = None,
               cluster=None) -> FastAPI:
    """`ready` says why the server is not ready -- no serving certificate loaded, shutting down --
    or None when it is (the server's shell knows);
    `lookup` reads the image configs plans need from registries (None: never); `cluster` gives
    the cluster's facts for the delivery choice (`clusterfacts.ClusterWatch` or `FixedFacts`;
    None: no cluster, as `inject` renders)."""
    app = FastAPI(title="restart-process-webhook", docs_url=None, redoc_url=None, openapi_url=None)
    registry = CollectorRegistry()
    admissions = Counter(
        "restart_process_admissions", "Admission reviews answered, by outcome.", ["outcome"], registry=registry
    )
    latency = Histogram(
        "restart_process_admission_duration_seconds",
        "Time to answer one admission review.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        registry=registry,
    )
    # Children made up front: zeros are exported, so a rate() works from the first scrape.
    outcomes = {outcome: admissions.labels(outcome) for outcome in Outcome}

    async def mutate(request: Request) -> Response:
        started = time.perf_counter()
        try:
            raw = await _read_limited(request, MAX_BODY_BYTES)
        except _BodyTooLarge:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = _parse_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return _error(400, f"request body is not JSON: {error}")
        try:
            review = admission.parse_review(body)
        except admission.BadReview as error:
            return _error(400, str(error))
        plan = admission.plan_review(review, config)
        image_configs = facts = None
        if lookup is not None and isinstance(plan, Plan) and plan.lookups:
            image_configs = await lookup.for_plan(plan, review.namespace)
        if cluster is not None and isinstance(plan, Plan) and plan.candidates and (
                (plan.delivery or config.delivery) != Delivery.INIT_CONTAINER):
            facts = await cluster.facts_for(plan.namespace)
        answer, report = admission.respond(review, plan, config, image_configs, facts)
        elapsed = time.perf_counter() - started
        outcomes[report.outcome].inc()
        latency.observe(elapsed)
        _log(report, elapsed)
        return Response(orjson.dumps(answer), media_type="application/json")

    # A plain Starlette route: the body is read and checked here, so FastAPI's dependency
    # resolution and response handling would only add a fifth to an admission's cost.
    app.add_route("/mutate", mutate, methods=["POST"])

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        why_not = ready()
        if why_not is None:
            return PlainTextResponse("ok")
        return PlainTextResponse(why_not, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(raw: bytes):
    """orjson is four times faster on an admission's body; what it refuses that JSON allows
    (integers beyond 64 bits) goes to the standard parser, whose errors also name the place."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _log(report: admission.Report, elapsed: float) -> None:
    fields = {
        "uid": report.uid,
        "namespace": report.namespace,
        "pod": report.pod,
        "outcome": report.outcome,
        "wrapped": list(report.wrapped),
        "delivery": report.delivery,
        "warnings": list(report.warnings),
        "duration_ms": round(elapsed * 1000, 3),
    }
    if report.error is not None:
        log.error("admission", extra={"fields": fields}, exc_info=report.error)
    else:
        admission_line(log, "admission", fields)
