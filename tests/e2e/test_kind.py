"""What users install, run for real on kind: the README's "Install with Helm" commands as written,
the webhook serving from its own image inside the cluster, the example app injected by it and
restarted in place (kubectl, and the real Tilt with docker_build), and what operators go through:
a webhook pod deleted, no webhook at all, a rollout to two replicas, `helm test`, `helm uninstall`.

The tests run in file order on one cluster (tests/e2e/conftest.py): each starts from what the one
before left, as a user's session does. The cluster is kind on the private Docker Engine, with
the node image hack/build-kind-node-image.sh assembles (containerd 2.3, Kubernetes v1.35.4), so
the webhook's delivery `auto` gives wrapped pods the wrapper as an image volume.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
import pytest
from kubernetes import client, config

from tests.support import kind as kind_support
from tests.support.kind import RELEASE_NAMESPACE as SYSTEM, WEBHOOK_DEPLOYMENT as FULLNAME, install_as_the_readme_says
from tests.support.live_update import WRAPPER, Cluster, Start, deploy, example_deployment, sync_way, tilt_way, watch_way
from tests.support.paths import ROOT
from tests.support.tilt import Tilt
from tests.support.waiting import wait_until
from tests.support.webhook_server import annotated_pod, delivery_of, wait_for_mutation

RELEASE = "rpw"  # the README's
APPS = "restart-process-e2e"  # enforces Pod Security "restricted"
EXAMPLE_IMAGE = "example-app:e2e"  # a tag other than :latest: IfNotPresent, the image kind loaded is used
# Our node image: containerd 2.3 and Kubernetes 1.35, so `auto` chooses the image volume. A published
# kindest/node (KIND_NODE_IMAGE) may be older: then either delivery is right.
EXPECTED_DELIVERY = None if os.environ.get("KIND_NODE_IMAGE") else "image-volume"


@pytest.fixture(scope="module")
def api(kind):
    return config.new_client_from_config(config_file=str(kind.kubeconfig))


@pytest.fixture(scope="module")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def installed(kind, core, wrapper_image, webhook_image):
    """Every line of the README's install block, run by bash as written -- `docker build` with the
    options the daemon needs (tests/support/docker.py's build_options) -- then until the
    in-cluster webhook mutates (cert-manager's check: a server-side dry run)."""
    commands = install_as_the_readme_says(kind)
    assert [line.split()[:2] for line in commands] == [["docker", "build"], ["docker", "build"], ["kind", "load"],
                                                       ["helm", "install"]], commands
    wait_for_mutation(core, "default", timeout=120, delivery=EXPECTED_DELIVERY)
    return commands


@pytest.fixture(scope="module")
def apps(kind, core) -> Cluster:
    core.create_namespace({"metadata": {"name": APPS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    return Cluster(kind.kubectl(), APPS, timeout=240)


@pytest.fixture(scope="module")
def example_image(kind, go, tmp_path_factory) -> str:
    """examples/app's image as its Dockerfile says: the program built on this machine, then
    `docker build` and `kind load docker-image`."""
    app = tmp_path_factory.mktemp("example") / "app"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=shutil.ignore_patterns("build"))
    subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", "build/example", "."], cwd=app, check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOOS": "linux", "GOFLAGS": "-mod=mod"},
                   capture_output=True)
    kind.run("docker", "build", "-t", EXAMPLE_IMAGE, str(app))
    kind.run("kind", "load", "docker-image", EXAMPLE_IMAGE)
    return EXAMPLE_IMAGE


def webhook_pods(core) -> list[client.V1Pod]:
    return [p for p in core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/name=restart-process-webhook").items
            if not p.metadata.deletion_timestamp]


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def tls_secret(core) -> client.V1Secret:
    return core.read_namespaced_secret(f"{FULLNAME}-tls", SYSTEM)


def rfc3339(text: str) -> float:
    """Seconds since the epoch of Tilt's times ("2026-12-07T17:20:01.123456789Z")."""
    whole, _, rest = text.rstrip("Z").partition(".")
    fraction = float("0." + rest) if rest else 0.0
    return datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp() + fraction


def probe(core, namespace: str = "default") -> str | None:
    """One opted-in pod, created as a server-side dry run: its delivery, or None if it came back
    unwrapped. A rejection raises."""
    pod = core.create_namespaced_pod(namespace, annotated_pod(f"probe-{uuid.uuid4().hex[:8]}"), dry_run="All")
    return delivery_of(core.api_client.sanitize_for_serialization(pod))


# --- the install path ------------------------------------------------------------------------

def test_the_readme_install_section_runs_as_written_and_the_webhook_serves_in_the_cluster(installed, kind, core, api):
    (pod,) = webhook_pods(core)
    (container,) = pod.spec.containers
    assert container.image == "restart-process/webhook:0.1.0"
    assert container.security_context.read_only_root_filesystem is True
    # The server itself, from its image: uid 10001, and a root filesystem it cannot write.
    exec_in = ["kubectl", "--namespace", SYSTEM, "exec", pod.metadata.name, "--"]
    status = kind.run(*exec_in, "cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.M), status
    assert "Read-only file system" in kind.run(*exec_in, "touch", "/probe", check=False).stderr
    # Self-managed TLS, through its service account: the Secret, owned by the webhook
    # configuration, and that configuration's caBundle.
    secret = tls_secret(core)
    assert [(o.kind, o.name) for o in secret.metadata.owner_references] == [("MutatingWebhookConfiguration", FULLNAME)]
    configuration = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(FULLNAME)
    assert configuration.webhooks[0].client_config.ca_bundle
    assert configuration.webhooks[0].client_config.service.name == FULLNAME
    logs = kind.run("kubectl", "--namespace", SYSTEM, "logs", pod.metadata.name).stdout
    assert '"serving"' in logs or "serving" in logs
    if EXPECTED_DELIVERY:
        assert probe(core) == EXPECTED_DELIVERY


def test_helm_test_passes(installed, kind, core):
    """A test pod that passed is deleted at once (hook-succeeded): none is left behind."""
    result = kind.run("helm", "test", RELEASE, "--namespace", SYSTEM, timeout=300)
    assert re.search(r"TEST SUITE:\s+rpw-restart-process-webhook-test-injection", result.stdout), result.stdout
    assert re.search(r"Phase:\s+Succeeded", result.stdout), result.stdout
    assert not core.list_namespaced_pod("default", field_selector=f"metadata.name={FULLNAME}-test-injection").items


def test_the_example_app_is_injected_by_the_in_cluster_webhook_and_restarts_in_place(installed, apps, example_image):
    """kubectl cp alone (restart-on-sync, the default), kubectl cp + `restart-wrapper trigger`, and
    kubectl cp alone into a watched directory: the program re-executed, the same container,
    restartCount 0, the file kept."""
    for way in (sync_way, tilt_way, watch_way):
        evidence = way(apps, example_image)
        assert evidence["restartCount"] == 0 and evidence["pids"][0] != evidence["pids"][1], evidence
        assert evidence["pid1"][0] == WRAPPER
        if EXPECTED_DELIVERY:
            assert delivery_of(apps.get("pod", evidence["pod"])) == EXPECTED_DELIVERY


def test_tilt_up_with_docker_build_live_updates_an_edit_in_the_same_container(installed, kind, apps):
    """examples/tilt as users run it on kind: Tilt compiles the app, builds the image with the
    Docker Engine, loads it into kind itself, deploys; then an edit of main.go is compiled, the
    binary synced and the program re-run -- in the same container, with no image build."""
    env = {key: value for key, value in kind.env().items()
           if key.startswith("DOCKER_") or key == "PATH"}
    with Tilt("tilt", kind.kubeconfig, APPS, env) as tilt:
        def running():
            pods = [p for p in json.loads(apps.run("get", "pod", "-l", "app=example", "-o", "json"))["items"]
                    if not p["metadata"].get("deletionTimestamp")
                    and "running" in (p["status"].get("containerStatuses") or [{}])[0].get("state", {})]
            return pods[0] if len(pods) == 1 else None

        pod = tilt.wait(running, "Tilt to build, load and deploy the example", timeout=600)
        name = pod["metadata"]["name"]
        assert pod["spec"]["containers"][0]["image"].startswith("example-app:tilt-"), "Tilt's own build, loaded into kind"
        if EXPECTED_DELIVERY:
            assert delivery_of(pod) == EXPECTED_DELIVERY
        (first,) = tilt.wait(lambda: apps.starts(name), "the program's first start")
        tilt.wait(lambda: tilt.get("uiresource", "example")["status"].get("runtimeStatus") == "ok",
                  "Tilt to see the resource running", ignoring=(RuntimeError,))
        container_id = apps.container_status(name)["containerID"]

        edited = f"hello from an edit {uuid.uuid4().hex[:6]}"
        main = tilt.example.parent / "app" / "main.go"
        edited_at = time.time()
        main.write_text(main.read_text().replace('"hello (no greeting file yet)"', json.dumps(edited)))
        starts: list[Start] = tilt.wait(
            lambda: s if (s := apps.starts(name)) and s[-1].greeting == edited else None,
            "the edited program's first output", timeout=300)
        assert starts[-1].pid != first.pid
        status = apps.container_status(name)
        assert (status["containerID"], status["restartCount"]) == (container_id, 0), status
        # What Tilt did about the edit, once it has recorded it (after the run step returns): a
        # live update, and no image build.
        since = tilt.wait(lambda: [b["spanID"] for b in tilt.get("uiresource", "example")["status"]["buildHistory"]
                                   if rfc3339(b["startTime"]) > edited_at and b.get("finishTime")],
                          "Tilt's record of the update", ignoring=(RuntimeError,))
        assert all(span.startswith("liveupdate:") for span in since), since


# --- what operators go through ------------------------------------------------------------------

def test_a_deleted_webhook_pod_is_replaced_without_rejecting_a_pod(installed, kind, core):
    """Pods are created throughout (server-side dry runs): none is rejected (failurePolicy
    Ignore). The replacement reuses the TLS Secret and injects."""
    secret = tls_secret(core)
    (old,) = webhook_pods(core)
    outcomes = Probes(core)
    with outcomes:
        core.delete_namespaced_pod(old.metadata.name, SYSTEM)
        wait_until(lambda: any(p.metadata.name != old.metadata.name and ready(p) for p in webhook_pods(core)),
                   180, 0.5, "a replacement webhook pod to be Ready")
        wait_until(lambda: not core.list_namespaced_pod(SYSTEM, field_selector=f"metadata.name={old.metadata.name}").items,
                   120, 0.5, "the old webhook pod to go")
    kind_support.OUTCOMES["a webhook pod deleted"] = outcomes.summary()
    assert outcomes.rejected == [], outcomes.rejected
    assert outcomes.total > 10
    assert tls_secret(core).metadata.uid == secret.metadata.uid
    assert tls_secret(core).data == secret.data
    assert probe(core) is not None


def test_without_webhook_pods_opted_in_pods_run_unwrapped_and_helm_test_says_why(installed, kind, core, apps,
                                                                                    example_image):
    secret = tls_secret(core)
    kind.run("kubectl", "--namespace", SYSTEM, "scale", f"deployment/{FULLNAME}", "--replicas=0")
    wait_until(lambda: not core.list_namespaced_pod(
        SYSTEM, label_selector="app.kubernetes.io/name=restart-process-webhook").items, 120, 0.5, "no webhook pods")
    # Fail open: the pod is created and runs, as its spec says, without the wrapper.
    deployment = example_deployment("while-gone", example_image, watch=False)
    apps.apply(deployment)
    apps.run("rollout", "status", "deployment/while-gone", "--timeout=180s")
    (pod,) = json.loads(apps.run("get", "pod", "-l", "app=while-gone", "-o", "json"))["items"]
    assert delivery_of(pod) is None and pod["spec"]["containers"][0]["command"] == ["/app/bin/example"]
    # `helm test` fails, and says why (the test pod's log, hook-output-log-policy).
    failed = kind.run("helm", "test", RELEASE, "--namespace", SYSTEM, check=False, timeout=300)
    assert failed.returncode != 0
    assert "restart-process: NOT injected" in failed.stdout + failed.stderr, failed.stdout + failed.stderr
    # Back: the new pod adopts the Secret as it is, injects again, and helm test passes.
    kind.run("kubectl", "--namespace", SYSTEM, "scale", f"deployment/{FULLNAME}", "--replicas=1")
    kind.run("kubectl", "--namespace", SYSTEM, "rollout", "status", f"deployment/{FULLNAME}", "--timeout=300s")
    wait_for_mutation(core, "default", timeout=120, delivery=EXPECTED_DELIVERY)
    assert (tls_secret(core).metadata.uid, tls_secret(core).data) == (secret.metadata.uid, secret.data)
    kind.run("helm", "test", RELEASE, "--namespace", SYSTEM, timeout=300)
    apps.run("delete", "deployment", "while-gone")


def test_a_rollout_to_two_replicas_lets_no_pod_through_uninjected(installed, kind, core):
    """`helm upgrade` to two replicas, with a new pod annotation so that every webhook pod is
    replaced: a loop creating opted-in pods throughout sees none rejected and none unwrapped."""
    outcomes = Probes(core)
    with outcomes:
        time.sleep(2)
        kind.run("helm", "upgrade", RELEASE, "charts/restart-process-webhook", "--namespace", SYSTEM, "--reuse-values",
                 "--set", "replicaCount=2", "--set", f"podAnnotations.rollout={uuid.uuid4().hex[:8]}", "--wait",
                 "--timeout=300s", timeout=400)
        kind.run("kubectl", "--namespace", SYSTEM, "rollout", "status", f"deployment/{FULLNAME}", "--timeout=300s")
        # Until the old replica has drained and gone.
        wait_until(lambda: len(core.list_namespaced_pod(
            SYSTEM, label_selector="app.kubernetes.io/name=restart-process-webhook").items) == 2, 120, 0.5,
            "only the two new webhook pods")
        time.sleep(2)
    kind_support.OUTCOMES["a rollout to two replicas"] = outcomes.summary()
    assert len([p for p in webhook_pods(core) if ready(p)]) == 2
    assert outcomes.rejected == [], outcomes.rejected
    assert outcomes.unwrapped == 0, f"{outcomes.unwrapped} of {outcomes.total} pods went through unwrapped"
    assert outcomes.total > 30, outcomes.total


def test_helm_uninstall_leaves_nothing_of_ours_and_wrapped_pods_keep_restarting(installed, kind, core, api, apps,
                                                                                 example_image):
    pod = deploy(apps, example_deployment("after-uninstall", example_image, watch=False))
    kind.run("helm", "uninstall", RELEASE, "--namespace", SYSTEM, "--wait", timeout=300)

    admission = client.AdmissionregistrationV1Api(api)
    assert FULLNAME not in [c.metadata.name for c in admission.list_mutating_webhook_configuration().items]
    rbac = client.RbacAuthorizationV1Api(api)
    selector = f"app.kubernetes.io/instance={RELEASE}"
    assert not rbac.list_cluster_role(label_selector=selector).items
    assert not rbac.list_cluster_role_binding(label_selector=selector).items
    # The TLS Secret, which the webhook made and Helm never knew of: the garbage collector deletes
    # it with the webhook configuration that owns it.
    wait_until(lambda: not core.list_namespaced_secret(SYSTEM, field_selector=f"metadata.name={FULLNAME}-tls").items,
               120, 0.5, "the TLS Secret to be garbage-collected")
    # The webhook's pods go last: the garbage collector deletes them after their Deployment, and
    # each drains for --shutdown-delay first. The namespace stays (Helm never deletes one, even
    # one --create-namespace made), with only what Kubernetes puts in every namespace.
    def left() -> list[str]:
        return [f"{kind_}/{name}" for kind_, name in namespaced_objects(kind, SYSTEM)
                if (kind_, name) not in (("configmap", "kube-root-ca.crt"), ("serviceaccount", "default"))]

    try:
        wait_until(lambda: not left(), 120, 1, f"nothing of the release left in {SYSTEM}")
    except AssertionError:
        assert left() == []
    assert not core.list_namespaced_pod("default", label_selector=selector).items  # helm test's pod

    # A pod wrapped before keeps its wrapper: the image volume (or the emptyDir's copy) stays.
    before = apps.starts(pod)[-1]
    apps.exec(pod, WRAPPER, "trigger")
    after = apps.wait(lambda: s[-1] if len(s := apps.starts(pod)) >= 2 else None, "a restart after the uninstall")
    assert after.pid != before.pid
    assert apps.container_status(pod)["restartCount"] == 0


def namespaced_objects(kind, namespace: str) -> list[tuple[str, str]]:
    """Every object in the namespace, of every listable namespaced kind: (kind, name)."""
    kinds = kind.run("kubectl", "api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    out = kind.run("kubectl", "--namespace", namespace, "get", ",".join(kinds), "-o",
                   "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}").stdout
    return [(line.split("/", 1)[0].lower(), line.split("/", 1)[1]) for line in out.splitlines() if "/" in line]


class Probes:
    """Opted-in pods created as server-side dry runs in a loop, in a thread, while the `with`
    block runs: how many, how many came back unwrapped, and every rejection."""

    def __init__(self, core):
        self.core = core
        self.total = 0
        self.unwrapped = 0
        self.rejected: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if probe(self.core) is None:
                    self.unwrapped += 1
            except client.ApiException as error:
                self.rejected.append(f"{error.status}: {error.body}")
            self.total += 1
            time.sleep(0.05)

    def summary(self) -> str:
        return f"{self.total} pods created, {len(self.rejected)} rejected, {self.unwrapped} unwrapped"

    def __enter__(self) -> "Probes":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
