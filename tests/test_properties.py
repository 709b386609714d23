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
        "delivery.app", "restart-on-sync", "sync-tools.b"]
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
arbitrary_pods = st.fixed_dictionaries(
    {"metadata": st.fixed_dictionaries({"annotations": annotations | json_values}) | json_values,
     "spec": st.fixed_dictionaries({"containers": containers}, optional={
         "initContainers": containers, "volumes": json_values, "nodeSelector": json_values}) | json_values},
    optional={"apiVersion": st.just("v1"), "kind": st.just("Pod")},
)

# Pods as people write them: opted in, well-formed, containers with a command, settings valid.
# Arbitrary shapes almost never opt in correctly, so without these the patch-applies and
# idempotence checks below would run on (next to) nothing.
PREFIX = "restart-process.dev/"
words = st.text(alphabet="abcxyz-=$/ .", min_size=1, max_size=8)
VALID_SETTINGS = {
    "watch": st.sampled_from(["/app", "/app/bin,/etc/config"]),
    "exit-policy": st.sampled_from(["rerun", "restart", "continue"]),
    "stop-signal": st.sampled_from(["TERM", "QUIT", "SIGWINCH", "9", "37"]),
    "stop-timeout": st.sampled_from(["250ms", "5s", "1m"]),
    "debounce": st.sampled_from(["0ms", "100ms", "2s"]),
    "restart-file": st.sampled_from(["/tmp/.restart-proc", "/app/restart"]),
    "env-file": st.sampled_from(["/app/.env"]),
    "liveness-probe": st.sampled_from(["keep", "remove", "relax"]),
    "sync-tools": st.sampled_from(["true", "false"]),
    "restart-on-sync": st.sampled_from(["true", "false"]),
    "entrypoint": st.sampled_from(['["/go/bin/app", "--flag"]', "/app/server --port=8080", "/bin/$(SHELL)"]),
}


@st.composite
def injectable_pods(draw):
    names = draw(st.lists(st.sampled_from(["app", "worker", "web", "b"]), min_size=1, max_size=3, unique=True))
    images = {name: draw(st.sampled_from([f"localhost:5000/{name}:dev", f"gcr.io/p/{name}@sha256:{'0' * 64}",
                                          f"team/{name}:v2", f"{name}"])) for name in names}
    containers = []
    for name in names:
        container = {"name": name, "image": images[name], "command": draw(st.lists(words, min_size=1, max_size=3))}
        if draw(st.booleans()):
            container["args"] = draw(st.lists(words, max_size=3))
        if draw(st.booleans()):
            container["env"] = draw(st.lists(st.fixed_dictionaries({"name": st.sampled_from(["PATH", "A", "B"]),
                                                                    "value": words}), max_size=2, unique_by=lambda e: e["name"]))
        if draw(st.booleans()):
            container["volumeMounts"] = [{"name": "data", "mountPath": draw(st.sampled_from(["/data", "/app/data"]))}]
        if draw(st.booleans()):
            container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "failureThreshold": 3}
        containers.append(container)
    annotations = {}
    opt_in = draw(st.sampled_from(["enabled", "containers", "images", "containers+images"]))
    if opt_in == "enabled":
        annotations[PREFIX + "enabled"] = "true"
    if "containers" in opt_in:
        annotations[PREFIX + "containers"] = ",".join(draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
    if "images" in opt_in:
        annotations[PREFIX + "images"] = draw(st.sampled_from(names))
    for key in draw(st.lists(st.sampled_from(sorted(VALID_SETTINGS)), max_size=4, unique=True)):
        target = draw(st.sampled_from(["", *(f".{name}" for name in names)]))
        annotations[f"{PREFIX}{key}{target}"] = draw(VALID_SETTINGS[key])
    if draw(st.booleans()):
        annotations[PREFIX + "delivery"] = draw(st.sampled_from(["auto", "image-volume", "init-container"]))
    spec = {"containers": containers}
    if any("volumeMounts" in c for c in containers) or draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.booleans()):
        spec["initContainers"] = [{"name": "setup", "image": "busybox", "command": ["true"]}]
    if draw(st.booleans()):
        spec["nodeSelector"] = {"kubernetes.io/arch": draw(st.sampled_from(["amd64", "arm64"]))}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations}, "spec": spec}


# Three draws in four are injectable pods; the fourth keeps arbitrary shapes coming.
pods = st.integers(0, 3).flatmap(lambda n: arbitrary_pods if n == 0 else injectable_pods())


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


MIN_PATCHED = 150  # of SETTINGS.max_examples (300); about 200 are patched with three draws in four injectable


def test_pods_are_allowed_and_patches_apply_and_are_idempotent():
    patched = 0

    @SETTINGS
    @given(pods)
    def check(pod):
        nonlocal patched
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
            patched += 1
            again = client.post("/mutate", json=pod_review(mutated)).json()["response"]
            assert "patch" not in again  # idempotent on its own output

    check()
    # The checks above are only as good as the number of pods that were patched.
    assert patched >= MIN_PATCHED, f"only {patched} generated pods were patched"
