"""What a user feels on a real node: a file change -> the new program's first output in the pod,
against replacing the pod; and what injection costs a pod's start.

One run, one node (containerd + runc + kubelet on this machine, tests/node), the real webhook,
and the real Tilt: one `tilt up` of a Tiltfile written for the benchmark (TILTFILE, below) with
examples/tilt-crane's build three times over -- three images, three Deployments of its k8s.yaml,
each with its own synced directory -- one for each way a live update re-runs the program. Rounds
interleave the cases (the three Tilt edits in a rotating order), so machine noise hits all alike:

  tilt edit, restart-on-sync  write data-sync/greeting.txt in Tilt's copy; Tilt's live_update is
                   the sync alone (tar over exec), as in examples/tilt-crane: when the wrapper's
                   tar has finished, it reports the sync and the wrapper restarts the program;
  tilt edit, trigger  the sync, then a run step `restart-wrapper trigger` (a second exec), with
                   restart-process.dev/restart-on-sync "false": the way for run steps that build;
  tilt edit, watch  the sync alone, restart-on-sync "false", and restart-process.dev/watch on the
                   synced /app/data with a 20 ms debounce: the wrapper sees the files change;
  kubectl by hand  `kubectl cp` then `kubectl exec ... trigger`, on a fourth Deployment of the
                   same image (restart-on-sync "false": the trigger is the restart);
  replace (plain)  what users have without the webhook: delete the pod of an unwrapped Deployment
                   of the same image; its ReplicaSet's new pod starts the program;
  replace (wrapped) the same with the webhook (the wrapper as an image volume), for reference.

Every latency ends at the timestamp containerd gave the program's "started" line in the
container's log file on the node (/var/log/pods/...): containerd stamps each line, in
nanoseconds, as it reads it from the container's output pipe, so the number is the program's
output itself, with no API server, kubelet log follower or kubectl in between. (What those
add -- the line reaching `kubectl logs -f`, and tilt up's own log stream -- is reported as the
last step of the breakdown.) Every latency starts at the host's clock just before the change:
the write of the file for Tilt, the start of `kubectl cp` by hand, the delete call for a
replacement. Host, containerd, container and Tilt timestamps are all CLOCK_REALTIME of one kernel.

The Tilt edits' breakdowns come from stamps each step leaves: Tilt's own record of the live
update (`tilt get uiresource`: buildHistory startTime and finishTime), the synced file's ctime in
the container (the moment tar wrote it), the sync file's ctime (the moment the tar reported the
finished sync: restart-on-sync) or the trigger file's (the moment `trigger` wrote it), and the
wrapper's "restarting" log line. File times are the kernel's coarse clock (one tick, 4 ms at
HZ=250, may be missing from a step). Each ends with what is left between Tilt's "update done"
(finishTime: the last exec of the live update has returned) and the new program's first line.
After the rounds, each Tilt pod must have restarted exactly once per edit.

Pod start: the same bare pod (the example's template, no command: with the webhook, ENTRYPOINT
is looked up in the registry) created in a namespace the webhook does not serve, and in one it
serves with each delivery -- the wrapper as an image volume (what `auto` chooses on this
containerd 2 node) and by init container (the pod's restart-process.dev/delivery) -- in
rotating order; create call -> the Ready condition seen by a watch, and -> the first output.

The node runs containerd 2 (tests/node's default runtime), the webhook reads its cluster as the
chart's does, so every wrapped pod here gets the image volume unless it asks otherwise.

    sudo .venv/bin/python -m benchmarks.live_update [--rounds N] [--pods N]
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config, watch

from benchmarks.stats import percentile
from tests.node.images import ImageBuilder
from tests.node.node import Node, NodeControlPlane, clean_stale
from tests.support.binaries import find_binary
from tests.support.tilt import Tilt, crane_example_settings
from tests.support.live_update import RESTART_ON_SYNC, WRAPPER, Cluster, ScenarioFailure
from tests.support.registry import Registry
from tests.support.waiting import wait_until
from tests.support.webhook_server import WebhookServer, delivery_of, wait_for_mutation
from webhook.names import SYNC_ENV, TRIGGER_ENV
from webhook.registration import webhook_configuration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_YAML = ROOT / "examples" / "tilt-crane" / "k8s.yaml"
# The Tilt edits' modes: each a Deployment, image and Tilt resource named edit-MODE, synced from
# data-MODE; its pod's annotations, and whether its live_update ends with the trigger run step.
MODES = {
    "sync": ({}, False),
    "trigger": ({RESTART_ON_SYNC: "false"}, True),
    "watch": ({RESTART_ON_SYNC: "false", "restart-process.dev/watch": "/app/data",
               "restart-process.dev/debounce": "20ms"}, False),
}
LABELS = {"sync": "tilt edit, restart-on-sync (sync alone)", "trigger": "tilt edit, trigger (sync + run trigger)",
          "watch": "tilt edit, watch (sync alone, 20 ms debounce)"}
# benchmarks/live_update.py's Tiltfile, written into Tilt's copy of examples/tilt-crane: its
# Tiltfile's build (build.sh) and settings, once for each mode.
TILTFILE = """version_settings(check_updates=False)
allow_k8s_contexts(os.getenv('ALLOW_K8S_CONTEXT'))
default_registry(os.getenv('REGISTRY'))
for mode, trigger in {modes}.items():
    custom_build(
        'edit-' + mode,
        './build.sh',
        deps=['build.sh', 'data-' + mode, '../app/main.go', '../app/go.mod'],
        skips_local_docker=True,
        live_update=[sync('data-' + mode, '/app/data')]
                    + ([run(['/restart-process/restart-wrapper', 'trigger'])] if trigger else []),
    )
k8s_yaml('bench.yaml')
"""
SELECTOR = "bench.restart-process.dev/webhook"  # namespaces labelled "on" get the webhook
STARTED = re.compile(r'started pid=(\d+) greeting="(.*)"')
STAMP = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)")
WAIT = 180  # seconds: generous, two cores shared with other work


def log(message: str) -> None:
    print(f"live_update: {message}", file=sys.stderr, flush=True)


def epoch(text: str) -> float:
    """RFC 3339 (containerd's log, Tilt's MicroTime) or `stat -c %z` time, to seconds since the epoch."""
    match = STAMP.search(text)
    if not match:
        raise ValueError(f"no timestamp in {text!r}")
    day, clock, fraction, zone = match.groups()
    seconds = calendar.timegm(time.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S"))
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[-2:]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds + int((fraction or "0").ljust(9, "0")[:9]) / 1e9


# --- the program's output, two ways ---------------------------------------------------------

class ContainerLog:
    """A container's log file on the node, as containerd writes it: `<RFC 3339 ns> <stream> <F|P> text`."""

    def __init__(self, node: Node, namespace: str, pod: str, uid: str, container: str = "app"):
        self.path = node.dir / "host" / "var" / "log" / "pods" / f"{namespace}_{pod}_{uid}" / container / "0.log"

    def entries(self) -> list[tuple[float, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4:
                out.append((epoch(parts[0]), parts[3]))
        return out

    def started(self, greeting: str | None = None, after: float = 0) -> float | None:
        """containerd's timestamp of the first "started" line after `after` (with `greeting`)."""
        for stamp, text in self.entries():
            match = STARTED.search(text)
            if match and stamp > after and (greeting is None or match.group(2) == greeting):
                return stamp
        return None

    def last(self, fragment: str, after: float, before: float) -> float | None:
        found = [stamp for stamp, text in self.entries() if fragment in text and after < stamp <= before]
        return found[-1] if found else None


class Follow:
    """`kubectl logs -f`, as a user watches a pod: each line with the host time it arrived."""

    def __init__(self, cluster: Cluster, pod: str):
        self.process = subprocess.Popen([*cluster.kubectl, "--namespace", cluster.namespace, "logs", "-f",
                                         "--tail=0", pod, "-c", "app"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            self.lines.append((time.time(), raw.decode(errors="replace")))

    def arrival(self, fragment: str, timeout: float = 10) -> float | None:
        try:
            return wait_until(lambda: next((t for t, text in list(self.lines) if fragment in text), None),
                              timeout, 0.005, f"{fragment!r} in kubectl logs -f")
        except AssertionError:
            return None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.reader.join(timeout=5)
        self.process.stdout.close()


# --- the node, the webhook, Tilt --------------------------------------------------------------

@dataclass
class Session:
    node: Node
    core: client.CoreV1Api
    on: Cluster      # a namespace the webhook serves
    off: Cluster     # one it does not
    images: dict
    crane: Path
    registry: str
    kubeconfig: Path


@contextlib.contextmanager
def session():
    """Everything tests/node's fixtures set up, torn down in reverse whatever happens."""
    with contextlib.ExitStack() as stack:
        clean_stale()
        plane = NodeControlPlane().start()
        stack.callback(plane.stop)
        registry = Registry()
        stack.callback(registry.stop)
        workdir = Path(tempfile.mkdtemp(prefix="restart-process-bench-images-"))
        stack.callback(shutil.rmtree, workdir, True)
        builder = ImageBuilder(registry.host, workdir)
        images = {"busybox": builder.push_busybox(), "wrapper": builder.push_wrapper(), "pause": builder.push_pause()}
        node = Node(plane, registry.host, images["pause"]).start()
        stack.callback(node.stop)
        server = WebhookServer("--wrapper-image", images["wrapper"], "--kubeconfig", str(plane.kubeconfig)).start()
        stack.callback(shutil.rmtree, server.dir, True)  # its certificates: stop() leaves them
        stack.callback(server.stop)
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core = client.CoreV1Api(api)
        client.AdmissionregistrationV1Api(api).create_mutating_webhook_configuration(webhook_configuration(
            server.client_config(), namespace_selector_extra=[{"key": SELECTOR, "operator": "In", "values": ["on"]}]))
        kubectl = [str(find_binary("kubectl")), f"--kubeconfig={plane.kubeconfig}"]
        for name in ("on", "off"):
            core.create_namespace({"metadata": {"name": f"bench-{name}", "labels": {SELECTOR: name}}})
        wait_for_mutation(core, "bench-on", delivery="image-volume")
        yield Session(node, core, Cluster(kubectl, "bench-on", timeout=WAIT), Cluster(kubectl, "bench-off", timeout=WAIT),
                      images, builder.crane, registry.host, plane.kubeconfig)


def deployment(name: str, image: str, annotations: dict | None = None) -> dict:
    """examples/tilt-crane/k8s.yaml (the pod Tilt deploys) under another name, with Tilt's image
    (opted in by its repository, as the example's is) and more annotations."""
    manifest = yaml.safe_load(EXAMPLE_YAML.read_text())
    manifest["metadata"] = {"name": name, "labels": {"app": name}}
    manifest["spec"]["selector"]["matchLabels"] = {"app": name}
    manifest["spec"]["template"]["metadata"]["labels"] = {"app": name}
    repository = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    manifest["spec"]["template"]["metadata"]["annotations"].update(
        {"restart-process.dev/images": repository, **(annotations or {})})
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return manifest


def write_tiltfile(tilt: Tilt) -> None:
    """TILTFILE and its Deployments into Tilt's copy of examples/tilt-crane, before `tilt up`. The
    `images` annotation opts each in by its own image repository, edit-MODE."""
    tilt.tiltfile.write_text(TILTFILE.format(modes={mode: trigger for mode, (_, trigger) in MODES.items()}))
    manifests = []
    for mode, (annotations, _) in MODES.items():
        name = f"edit-{mode}"
        shutil.copytree(tilt.example / "data", tilt.example / f"data-{mode}")
        manifests.append(deployment(name, name, annotations))
    (tilt.example / "bench.yaml").write_text(yaml.safe_dump_all(manifests))


def running_pod(s: Session, namespace: str, app: str, not_uid: str = "") -> client.V1Pod | None:
    pods = [p for p in s.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
            if not p.metadata.deletion_timestamp and p.metadata.uid != not_uid]
    if len(pods) == 1 and any(c.state.running for c in pods[0].status.container_statuses or []):
        return pods[0]
    return None


def wait_running(s: Session, namespace: str, app: str) -> client.V1Pod:
    return wait_until(lambda: running_pod(s, namespace, app), WAIT, 0.2, f"{app} running in {namespace}")


def wrapped(pod: client.V1Pod) -> bool:
    return (pod.spec.containers[0].command or [None])[0] == WRAPPER


def container_times(cluster: Cluster, pod: str, *paths: str) -> list[float]:
    """The files' ctimes in the container: when they were last written there."""
    out = cluster.exec(pod, "stat", "-c", "%z", *paths)
    return [epoch(line) for line in out.splitlines() if line.strip()]


def env_value(pod: client.V1Pod, name: str) -> str | None:
    return next((e.value for e in pod.spec.containers[0].env or [] if e.name == name), None)


def trigger_file(pod: client.V1Pod) -> str:
    return env_value(pod, TRIGGER_ENV)


# --- the cases ------------------------------------------------------------------------------

def tilt_edit(s: Session, tilt: Tilt, mode: str, pod: client.V1Pod, follow: Follow, i: int) -> dict:
    cluster, name, resource = s.on, pod.metadata.name, f"edit-{mode}"
    container_log = ContainerLog(s.node, s.on.namespace, name, pod.metadata.uid)
    updated = tilt.output().count("updated!")
    text = f"tilt edit {mode} {i} {uuid.uuid4().hex[:6]}"
    greeting = tilt.example / f"data-{mode}" / "greeting.txt"
    written = time.time()
    greeting.write_text(text + "\n")
    started = wait_until(lambda: container_log.started(text, written), WAIT, 0.005, f"the program to print {text!r}")
    restarting = container_log.last("restart-wrapper: restarting", written, started)
    # Tilt's own record of this live update, once it has finished with it.
    history = tilt.wait(lambda: next((b for b in tilt.get("uiresource", resource)["status"].get("buildHistory", [])
                                      if b["spanID"].startswith("liveupdate:") and b.get("finishTime")
                                      and epoch(b["startTime"]) > written), None),
                        "Tilt's record of the live update", timeout=WAIT, interval=0.1, ignoring=(RuntimeError,))
    tilt.wait(lambda: tilt.output().count("updated!") > updated, "Tilt to finish the update", timeout=WAIT)
    signal = {"trigger": trigger_file(pod), "sync": env_value(pod, SYNC_ENV)}.get(mode)
    synced, *signalled = container_times(cluster, name, "/app/data/greeting.txt", *([signal] if signal else []))
    shown = tilt.wait(lambda: next((t for t, line in tilt.lines() if f'greeting="{text}"' in line), None),
                      "tilt up to show the output", timeout=30)
    followed = follow.arrival(f'greeting="{text}"')
    began, finished = epoch(history["startTime"]), epoch(history["finishTime"])
    steps = {"total": started - written,
             "write -> Tilt starts the live update (debounce 200 ms + Tilt)": began - written,
             "-> file synced in the container (tar over exec)": synced - began}
    if mode == "trigger":
        steps["-> trigger written (run step's exec)"] = signalled[0] - synced
        steps["-> wrapper restarting (inotify)"] = restarting - signalled[0]
    elif mode == "sync":
        steps["-> sync reported (the tar's end)"] = signalled[0] - synced
        steps["-> wrapper restarting (inotify)"] = restarting - signalled[0]
    else:
        steps["-> wrapper restarting (inotify, 20 ms quiet)"] = restarting - synced
    return {**steps,
            "-> program's first output (stop, start)": started - restarting,
            "output -> seen by kubectl logs -f": (followed or float("nan")) - started,
            "output -> shown by tilt up": shown - started,
            "Tilt's update done (finishTime) -> program's first output": started - finished}


def by_hand_edit(s: Session, pod: client.V1Pod, follow: Follow, local: Path, i: int) -> dict:
    cluster, name = s.on, pod.metadata.name
    container_log = ContainerLog(s.node, s.on.namespace, name, pod.metadata.uid)
    text = f"by hand {i} {uuid.uuid4().hex[:6]}"
    local.write_text(text + "\n")
    began = time.time()
    cluster.copy(local, name, "/app/data/greeting.txt")
    copied = time.time()
    cluster.exec(name, WRAPPER, "trigger")
    execed = time.time()
    started = wait_until(lambda: container_log.started(text, began), WAIT, 0.005, f"the program to print {text!r}")
    restarting = container_log.last("restart-wrapper: restarting", began, started)
    synced, triggered = container_times(cluster, name, "/app/data/greeting.txt", trigger_file(pod))
    followed = follow.arrival(f'greeting="{text}"')
    return {"total": started - began,
            "kubectl cp starts -> file synced in the container": synced - began,
            "-> kubectl cp returns": copied - synced,
            "-> kubectl exec trigger: trigger written": triggered - copied,
            "-> wrapper restarting (inotify)": restarting - triggered,
            "-> program's first output (stop, start)": started - restarting,
            "kubectl exec returns, relative to the output": execed - started,
            "output -> seen by kubectl logs -f": (followed or float("nan")) - started}


def replace(s: Session, cluster: Cluster, app: str, expect_wrapped: bool) -> dict:
    """Delete the Deployment's pod; time until its replacement's program prints."""
    old = wait_running(s, cluster.namespace, app)
    began = time.time()
    s.core.delete_namespaced_pod(old.metadata.name, cluster.namespace)

    def printed():
        new = running_pod(s, cluster.namespace, app, not_uid=old.metadata.uid)
        if new is None:
            return None
        stamp = ContainerLog(s.node, cluster.namespace, new.metadata.name, new.metadata.uid).started()
        return (new, stamp) if stamp else None

    new, started = wait_until(printed, WAIT, 0.01, f"a new pod of {app} to print")
    if wrapped(new) != expect_wrapped:
        raise ScenarioFailure(f"{new.metadata.name}: wrapped={wrapped(new)}, expected {expect_wrapped}")
    # The old pod is gone before the next measurement, so terminations do not overlap it; that
    # moment is also when `kubectl delete pod` would have returned.
    wait_until(lambda: not s.core.list_namespaced_pod(cluster.namespace, field_selector=f"metadata.name={old.metadata.name}").items,
               WAIT, 0.01, f"{old.metadata.name} to go")
    return {"total": started - began, "delete -> old pod gone (kubectl delete returns)": time.time() - began}


# Pod start's cases: where the pod is created, the delivery it asks for, the one it must get, and
# whether it has an emptyDir of its own. The last is the baseline for what any volume costs: the
# kubelet waits for a pod's volumes before it starts a container, and a wrapped pod always has one
# (the trigger's emptyDir) where the bare example has none.
STARTS = {"start-off": ("off", None, None, False),
          "start-off-emptydir": ("off", None, None, True),
          "start-volume": ("on", None, "image-volume", False),
          "start-init": ("on", "init-container", "init-container", False)}


def pod_start(s: Session, case: str, image: str, i: int) -> dict:
    """Create a bare pod from the example's template; time to Ready (seen by a watch) and to output."""
    where, asks, expected, emptydir = STARTS[case]
    cluster = s.on if where == "on" else s.off
    template = deployment("x", image)["spec"]["template"]
    name = f"{case}-{i}"
    annotations = {**template["metadata"]["annotations"], **({"restart-process.dev/delivery": asks} if asks else {})}
    spec = template["spec"]
    if emptydir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], "name": name,
                                                            "annotations": annotations},
            "spec": spec}
    began = time.time()
    created = s.core.create_namespaced_pod(cluster.namespace, body)
    ready = None
    stream = watch.Watch()
    for event in stream.stream(s.core.list_namespaced_pod, cluster.namespace, field_selector=f"metadata.name={name}",
                               resource_version=created.metadata.resource_version, timeout_seconds=WAIT):
        conditions = event["object"].status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready = time.time()
            stream.stop()
    if ready is None:
        raise ScenarioFailure(f"{name} did not become Ready in {WAIT}s")
    pod = s.core.read_namespaced_pod(name, cluster.namespace)
    got = delivery_of(s.core.api_client.sanitize_for_serialization(pod))
    if got != expected or wrapped(pod) != (expected is not None):
        raise ScenarioFailure(f"{name}: delivery {got}, wrapped={wrapped(pod)}, expected {expected}")
    container_log = ContainerLog(s.node, cluster.namespace, name, pod.metadata.uid)
    started = wait_until(lambda: container_log.started(), WAIT, 0.01, f"{name}'s program to print")
    s.core.delete_namespaced_pod(name, cluster.namespace)
    wait_until(lambda: not s.core.list_namespaced_pod(cluster.namespace, field_selector=f"metadata.name={name}").items,
               WAIT, 0.2, f"{name} to go")
    return {"create -> Ready": ready - began, "create -> first output": started - began}


# --- report ---------------------------------------------------------------------------------

def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values if v == v]  # nan: not observed
    if not ms:
        return f"{'-':>9} {'-':>9}"
    return f"{statistics.median(ms):9.1f} {percentile(ms, 95):9.1f}" + (f"  (n={len(ms)})" if len(ms) != len(values) else "")


WIDTH = 64


def table(title: str, runs: list[dict]) -> None:
    print(f"\n{title} ({len(runs)} runs)")
    print(f"  {'':{WIDTH}} {'median ms':>9} {'p95 ms':>9}")
    for key in runs[0]:
        print(f"  {key:{WIDTH}} {summary([r[key] for r in runs])}")


def ratio(a: list[float], b: list[float]) -> str:
    return (f"median {statistics.median(a) / statistics.median(b):.3f}x, "
            f"p95 {percentile(a, 95) / percentile(b, 95):.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="edits of each kind and pod replacements of each kind")
    parser.add_argument("--pods", type=int, default=12, help="pod starts of each kind (no webhook, image volume, "
                                                             "init container)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the node needs root (containerd, mounts, cgroups): sudo make bench")

    began = time.monotonic()
    results: dict[str, list[dict]] = {**{mode: [] for mode in MODES}, "hand": [], "plain": [], "wrapped": [],
                                      **{case: [] for case in STARTS}}
    with session() as s, contextlib.ExitStack() as stack:
        log(f"node ready in {time.monotonic() - began:.0f}s; starting tilt up")
        tilt = Tilt("tilt-crane", s.kubeconfig, s.on.namespace,
                    crane_example_settings(s.registry, s.images["busybox"], s.crane, s.kubeconfig))
        stack.callback(tilt.stop)
        write_tiltfile(tilt)
        tilt.start()
        tilt_pods = {}
        for mode in MODES:
            tilt_pods[mode] = tilt.wait(lambda m=mode: running_pod(s, s.on.namespace, f"edit-{m}"),
                                        f"Tilt's pod edit-{mode} to run", timeout=WAIT)
            tilt.wait(lambda m=mode: tilt.get("uiresource", f"edit-{m}")["status"].get("runtimeStatus") == "ok",
                      f"Tilt to see edit-{mode} running", timeout=WAIT, ignoring=(RuntimeError,))
            # restart-on-sync where the mode has it, and only there (the webhook's --sync-file).
            sync_file = any(a.startswith("--sync-file") for a in tilt_pods[mode].spec.containers[0].command)
            assert wrapped(tilt_pods[mode]) and sync_file == (mode == "sync"), tilt_pods[mode].spec.containers[0]
        image = tilt_pods["sync"].spec.containers[0].image
        s.on.apply(deployment("by-hand", image, {RESTART_ON_SYNC: "false"}))
        s.on.apply(deployment("replace-wrapped", image))
        s.off.apply(deployment("replace-plain", image))
        hand_pod = wait_running(s, s.on.namespace, "by-hand")
        for namespace, app in ((s.on.namespace, "replace-wrapped"), (s.off.namespace, "replace-plain")):
            wait_running(s, namespace, app)
        assert wrapped(hand_pod) and not wrapped(running_pod(s, s.off.namespace, "replace-plain"))
        follows = {mode: Follow(s.on, pod.metadata.name) for mode, pod in tilt_pods.items()}
        follow_hand = Follow(s.on, hand_pod.metadata.name)
        for follow in (*follows.values(), follow_hand):
            stack.callback(follow.stop)
        local = Path(tempfile.mkdtemp(prefix="restart-process-bench-")) / "greeting.txt"
        stack.callback(shutil.rmtree, local.parent, True)

        # Warm-up, not counted: the followers attach, Tilt's and kubectl's paths are exercised once.
        modes = list(MODES)
        for mode in modes:
            tilt_edit(s, tilt, mode, tilt_pods[mode], follows[mode], -1)
        by_hand_edit(s, hand_pod, follow_hand, local, -1)
        log(f"measuring {args.rounds} rounds")
        for i in range(args.rounds):
            for mode in modes[i % len(modes):] + modes[:i % len(modes)]:
                results[mode].append(tilt_edit(s, tilt, mode, tilt_pods[mode], follows[mode], i))
            results["hand"].append(by_hand_edit(s, hand_pod, follow_hand, local, i))
            results["plain"].append(replace(s, s.off, "replace-plain", expect_wrapped=False))
            results["wrapped"].append(replace(s, s.on, "replace-wrapped", expect_wrapped=True))
            log(f"round {i + 1}: tilt " + ", ".join(f"{m} {results[m][-1]['total'] * 1000:.0f} ms" for m in modes)
                + f"; by hand {results['hand'][-1]['total'] * 1000:.0f} ms, replace "
                f"{results['plain'][-1]['total'] * 1000:.0f} / {results['wrapped'][-1]['total'] * 1000:.0f} ms")
        # Exactly one restart per edit (the warm-up's included) in each Tilt pod: a mode that
        # restarted twice would be timed on its first restart and hide the second.
        for mode, pod in tilt_pods.items():
            restarts = s.on.logs(pod.metadata.name).count("restart-wrapper: restarting")
            assert restarts == args.rounds + 1, f"edit-{mode}: {restarts} restarts for {args.rounds + 1} edits"
        # After the rounds, so the edits' Tilt and pods are idle; the same spec in both namespaces.
        log(f"pod starts: {args.pods} each without the webhook (with no volume, with an emptyDir), by image "
            f"volume and by init container, rotating")
        cases = list(STARTS)
        for case in cases:  # warm-up: the wrapper image pulled, each path exercised once
            pod_start(s, case, image, -1)
        for i in range(args.pods):
            for case in cases[i % len(cases):] + cases[:i % len(cases)]:
                results[case].append(pod_start(s, case, image, i))
        for pod in (*tilt_pods.values(), hand_pod):  # nothing in any live-updated container restarted
            status = s.core.read_namespaced_pod(pod.metadata.name, s.on.namespace).status.container_statuses[0]
            assert status.restart_count == 0, status
        kubectl_start = []
        for _ in range(10):
            t = time.monotonic()
            subprocess.run([*s.on.kubectl, "version", "--client"], capture_output=True, check=True)
            kubectl_start.append(time.monotonic() - t)

    totals = {case: [r["total"] for r in results[case]] for case in (*MODES, "hand", "plain", "wrapped")}
    print(f"\nfile change -> the new program's first output (containerd's log timestamp), {args.rounds} rounds, "
          f"interleaved; run took {time.monotonic() - began:.0f}s")
    print(f"  {'':{WIDTH}} {'median ms':>9} {'p95 ms':>9}")
    for case, label in (*((mode, LABELS[mode]) for mode in MODES),
                        ("hand", "kubectl by hand (cp + exec trigger)"),
                        ("plain", "replace the pod, no webhook (what users have)"),
                        ("wrapped", "replace the pod, with the webhook")):
        print(f"  {label:{WIDTH}} {summary(totals[case])}")
    print(f"ratio tilt edit restart-on-sync / trigger: {ratio(totals['sync'], totals['trigger'])} (target <= 0.85x)")
    print(f"ratio tilt edit restart-on-sync / watch (20 ms debounce): {ratio(totals['sync'], totals['watch'])} "
          f"(target <= 1x: no slower)")
    print(f"ratio tilt edit restart-on-sync / replace (no webhook): {ratio(totals['sync'], totals['plain'])}")
    print(f"ratio kubectl by hand / replace (no webhook): {ratio(totals['hand'], totals['plain'])}")
    table("replacing the pod, no webhook", results["plain"])
    table("replacing the pod, with the webhook", results["wrapped"])
    for mode in MODES:
        table(f"where a Tilt edit's time goes: {LABELS[mode]}", results[mode])
    print("  (Tilt's update done -> output: positive when the program's first line came after Tilt's live\n"
          "   update had finished, negative when before)")
    table("the same steps by hand with kubectl", results["hand"])
    print(f"  (kubectl's own start, `kubectl version --client`: median {statistics.median(kubectl_start) * 1000:.0f} ms)")
    table("pod start without the webhook", results["start-off"])
    table("pod start without the webhook, with an emptyDir volume", results["start-off-emptydir"])
    table("pod start with the webhook, the wrapper as an image volume (auto on containerd 2)", results["start-volume"])
    table("pod start with the webhook, the wrapper by init container", results["start-init"])
    for key in ("create -> Ready", "create -> first output"):
        off = [r[key] for r in results["start-off"]]
        off_emptydir = [r[key] for r in results["start-off-emptydir"]]
        for case, label, target in (("start-volume", "image volume", " (target <= 1.1x)"),
                                    ("start-init", "init container", "")):
            print(f"ratio {key}, {label} / no webhook: {ratio([r[key] for r in results[case]], off)}"
                  + (target if "Ready" in key else ""))
        print(f"ratio {key}, image volume / no webhook with an emptyDir: "
              f"{ratio([r[key] for r in results['start-volume']], off_emptydir)}")
    # Why, from the kubelet's log: it starts the app container only once it has seen the init
    # container exit, and a kubelet with the generic PLEG (the default) sees container state
    # changes by relisting the runtime once a second. An image volume has no init container.
    print("(by init container, the kubelet starts the app container after its next PLEG relist -- once a\n"
          " second -- has seen the init container exit: about one second more, whatever the webhook does;\n"
          " an image volume is mounted with the pod's other volumes, before any container starts. What is\n"
          " left before the first output is any volume's: the kubelet's volume manager polls for a pod's\n"
          " volumes every 300 ms, so the bare pod, which has none, starts sooner -- the same pod with an\n"
          " emptyDir of its own starts as late as the wrapped one, whose trigger volume is an emptyDir)")


if __name__ == "__main__":
    main()
