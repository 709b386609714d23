"""Hypothesis throws arbitrary JSON and arbitrary pod shapes at /mutate: never a 5xx, always a valid answer."""

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.app import create_app
from webhook.config import InjectorConfig

from tests.support.reviews import apply_response, pod_review

client = TestClient(create_app(InjectorConfig()))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
keys = ["enabled", "containers", "images", "entrypoint", "restart-file", "watch", "exit-policy",
        "stop-signal", "stop-timeout", "debounce", "injected", "entrypoint.app", "watch.b", "bogus", "delivery",
        "delivery.app"]
annotation_values = st.sampled_from(["true", "false", "app", "a,b", "/x", "5s", "TERM", '["/a"]', "", "continue",
                                     "image-volume", "init-container", "auto"]) | json_values
annotations = st.dictionaries(st.sampled_from(keys).map(lambda k: f"restart-process.dev/{k}"), annotation_values, max_size=5)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["app", "b", "restart-process-install"]) | json_values},
        optional={
            "image": st.sampled_from(["app:1", "localhost:5000/b@sha256:00", ""]) | json_values,
            "command": st.lists(st.text(max_size=8), max_size=3) | json_values,
            "args": st.lists(st.text(max_size=8), max_size=3) | json_values,
            "volumeMounts": st.lists(st.fixed_dictionaries({"name": st.text(max_size=16), "mountPath": st.text(max_size=20)}), max_size=2) | json_values,
        },
    ),
    max_size=3,
) | json_values
pods = st.fixed_dictionaries(
    {"metadata": st.fixed_dictionaries({"annotations": annotations | json_values}) | json_values,
     "spec": st.fixed_dictionaries({"containers": containers}, optional={
         "initContainers": containers, "volumes": json_values, "nodeSelector": json_values}) | json_values},
    optional={"apiVersion": st.just("v1"), "kind": st.just("Pod")},
)


@SETTINGS
@given(json_values)
def test_arbitrary_json_never_5xx(body):
    answer = client.post("/mutate", content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code < 500
    if answer.status_code != 200:
        assert "error" in answer.json()


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_5xx(body):
    assert client.post("/mutate", content=body).status_code in (200, 400)


@SETTINGS
@given(pods)
def test_arbitrary_pods_are_allowed_and_patches_apply(pod):
    review = pod_review(pod)
    answer = client.post("/mutate", json=review)
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is True and response["uid"] == review["request"]["uid"]
    for warning in response.get("warnings", []):
        assert warning.startswith("restart-process: ")
        assert "internal error" not in warning  # malformed pods get a clear answer, not our crash
    mutated = apply_response(pod, response)  # a patch must always apply to what was sent
    if "patch" in response:
        again = client.post("/mutate", json=pod_review(mutated)).json()["response"]
        assert "patch" not in again  # idempotent on its own output
