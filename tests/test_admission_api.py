"""The HTTP API, driven with AdmissionReview JSON as kube-apiserver sends it."""

import json
import logging

import pytest
import yaml
from fastapi.testclient import TestClient

from webhook import logs
from webhook.app import MAX_BODY_BYTES, create_app
from webhook.clusterfacts import FixedFacts
from webhook.config import InjectorConfig

from tests.support.reviews import apply_response, pod_review
from tests.support.golden import cluster_facts, expected_output, expected_warnings, image_configs, inputs, read_facts


@pytest.fixture
def client():
    return TestClient(create_app(InjectorConfig()))


def pod_cases():
    for case in inputs():
        # Cases that assume image configs from a registry are served by tests/test_registry.py,
        # against a real registry; this app has no registry behind it.
        if case.suffix != ".yaml" or image_configs(case).exists():
            continue
        documents = list(yaml.safe_load_all(case.read_text()))
        if len(documents) == 1 and documents[0]["kind"] == "Pod":
            yield case


def metric(client, outcome: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'restart_process_admissions_total{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no metric for {outcome}")


@pytest.mark.parametrize("case", list(pod_cases()), ids=lambda p: p.name)
def test_patch_turns_the_submitted_pod_into_the_golden_output(client, case):
    if cluster_facts(case).exists():  # the cluster the case assumes, as the server would have read it
        client = TestClient(create_app(InjectorConfig(), cluster=FixedFacts(read_facts(cluster_facts(case)))))
    pod = yaml.safe_load(case.read_text())
    namespace = pod["metadata"].get("namespace", "default")
    review = pod_review(pod, namespace)
    answer = client.post("/mutate", json=review)
    assert answer.status_code == 200
    body = answer.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    response = body["response"]
    assert response["uid"] == review["request"]["uid"] and response["allowed"] is True
    assert apply_response(pod, response) == yaml.safe_load(expected_output(case).read_text())
    expected = expected_warnings(case)
    want = [line.rsplit(" [document", 1)[0] for line in expected.read_text().splitlines()] if expected.exists() else []
    assert response.get("warnings", []) == want


def test_no_patch_when_nothing_changes(client):
    pod = yaml.safe_load((inputs()[0].parent / "not-opted-in.yaml").read_text())
    response = client.post("/mutate", json=pod_review(pod)).json()["response"]
    assert "patch" not in response and "patchType" not in response and response["allowed"] is True


def test_v1beta1_is_answered_in_kind(client):
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    body = client.post("/mutate", json=pod_review(pod, api_version="admission.k8s.io/v1beta1")).json()
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"]["patchType"] == "JSONPatch"


def test_dry_run_is_mutated_the_same(client):
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    wet = client.post("/mutate", json=pod_review(pod)).json()["response"]
    dry = client.post("/mutate", json=pod_review(pod, dry_run=True)).json()["response"]
    assert apply_response(pod, wet) == apply_response(pod, dry) != pod


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_only_create_is_mutated(client, operation):
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    response = client.post("/mutate", json=pod_review(pod, operation=operation)).json()["response"]
    assert response["allowed"] is True and "patch" not in response


def test_other_kinds_and_subresources_pass(client):
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    review = pod_review(pod)
    review["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "patch" not in client.post("/mutate", json=review).json()["response"]
    review = pod_review(pod)
    review["request"]["subResource"] = "ephemeralcontainers"
    assert "patch" not in client.post("/mutate", json=review).json()["response"]


def test_namespace_comes_from_the_request_when_the_pod_has_none(client):
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    response = client.post("/mutate", json=pod_review(pod, namespace="kube-system")).json()["response"]
    assert "patch" not in response


def test_configured_excluded_namespaces():
    client = TestClient(create_app(InjectorConfig(excluded_namespaces=frozenset({"restart-process-system"}))))
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    assert "patch" not in client.post("/mutate", json=pod_review(pod, "restart-process-system")).json()["response"]
    assert "patch" not in client.post("/mutate", json=pod_review(pod, "kube-public")).json()["response"]
    assert "patch" in client.post("/mutate", json=pod_review(pod, "dev")).json()["response"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (b'"x"', "JSON object"),
        (b"{}", "AdmissionReview"),
        (b'{"kind": "AdmissionReview", "apiVersion": "v2"}', "apiVersion"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}', "uid"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": 7}}', "uid"),
    ],
)
def test_bad_requests_get_400_with_a_message(client, body, message):
    answer = client.post("/mutate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_oversized_bodies_get_413(client):
    answer = client.post("/mutate", content=b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_oversized_chunked_bodies_get_413(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    answer = client.post("/mutate", content=chunks())
    assert answer.status_code == 413


@pytest.mark.parametrize("phase", ["webhook.admission.plan_pod", "webhook.admission.apply"])
def test_internal_errors_fail_open(client, monkeypatch, phase):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(phase, broken)
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    before = metric(client, "error")
    answer = client.post("/mutate", json=pod_review(pod))
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is True and "patch" not in response
    assert response["warnings"][0].startswith("restart-process: internal error")
    assert metric(client, "error") == before + 1


def test_metrics_count_outcomes_and_latency(client):
    golden = inputs()[0].parent
    before = {o: metric(client, o) for o in ("injected", "skipped", "invalid")}
    for name in ("command-args.yaml", "not-opted-in.yaml", "unknown-container.yaml"):
        client.post("/mutate", json=pod_review(yaml.safe_load((golden / name).read_text())))
    assert metric(client, "injected") == before["injected"] + 1
    assert metric(client, "skipped") == before["skipped"] + 1
    assert metric(client, "invalid") == before["invalid"] + 1
    text = client.get("/metrics").text
    assert "restart_process_admission_duration_seconds_count 3.0" in text


def test_health_and_readiness():
    why_not = {"value": "no serving certificate loaded"}
    client = TestClient(create_app(InjectorConfig(), ready=lambda: why_not["value"]))
    assert client.get("/healthz").status_code == 200
    answer = client.get("/readyz")
    assert (answer.status_code, answer.text) == (503, "no serving certificate loaded")
    why_not["value"] = None
    assert client.get("/readyz").status_code == 200


@pytest.fixture
def json_logging():
    """`serve`'s logging, put back as it was afterwards (pytest's own handlers included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield logs.configure
    root.handlers[:] = handlers
    root.setLevel(level)


def test_one_structured_log_line_per_admission(client, capsys, json_logging):
    json_logging("info")
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    review = pod_review(pod, "dev")
    capsys.readouterr()
    client.post("/mutate", json=review)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    lines = [line for line in lines if line["logger"] != "httpx"]  # the test client's own
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "restart_process.admission" and line["level"] == "info" and line["msg"] == "admission"
    assert line["uid"] == review["request"]["uid"] and line["namespace"] == "dev"
    assert line["pod"] == "web" and line["outcome"] == "injected" and line["wrapped"] == ["app"]
    assert line["duration_ms"] >= 0 and line["time"].endswith("Z")


def test_no_admission_line_when_the_level_is_above_info(client, capsys, json_logging):
    json_logging("warning")
    pod = yaml.safe_load((inputs()[0].parent / "command-args.yaml").read_text())
    capsys.readouterr()
    client.post("/mutate", json=pod_review(pod, "dev"))
    assert "restart_process.admission" not in capsys.readouterr().err
