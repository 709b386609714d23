"""What a Tilt user gains on kind: an edit of the program -> its new output, with the live update
against the same edit with a full rebuild.

One run, one kind cluster (tests/support/kind.py: the private Docker Engine, the node image this
project builds), the chart installed as the README says, and two `tilt up`s of examples/tilt side
by side, in namespaces of their own:

  live update   examples/tilt as it is: `compile` builds the binary on this machine, the
                live_update syncs it into the running container, and the finished sync re-runs
                it (restart-on-sync: no run step);
  full rebuild  the same Tiltfile without its live_update -- Tilt's default for docker_build --
                so the new binary is built into a new image, loaded into kind (`kind load`, as
                Tilt does on kind) and rolled out in a new pod.

Each round edits main.go's greeting in one copy, then the other, and times the write -> the new
program's "started" line, stamped by containerd as it read it from the container (`kubectl logs
--timestamps`): no kubectl, API server or Tilt log stream in the way. Host, node and containerd
share one kernel clock.

    sudo .venv/bin/python -m benchmarks.kind_live_update [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.stats import percentile
from tests.support import docker
from tests.support.kind import Kind, install_as_the_readme_says
from tests.support.live_update import Cluster
from tests.support.tilt import Tilt
from tests.support.waiting import wait_until

STARTED = re.compile(r'^(\S+) .*started pid=(\d+) greeting="(.*)"$')
NO_GREETING = '"hello (no greeting file yet)"'  # in examples/app/main.go
WAIT = 600


def log(message: str) -> None:
    print(f"kind_live_update: {message}", file=sys.stderr, flush=True)


def stamp(text: str) -> float:
    whole, _, rest = text.rstrip("Z").partition(".")
    return (datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp()
            + (float("0." + rest) if rest else 0.0))


def without_live_update(tiltfile: Path) -> None:
    """The same docker_build with no live_update: Tilt rebuilds the image on every change."""
    text = tiltfile.read_text()
    edited = re.sub(r"\n    live_update=\[.*?\n    \],", "", text, flags=re.S)
    assert edited != text and "live_update" not in edited.split("docker_build(", 1)[1], "examples/tilt changed"
    tiltfile.write_text(edited)


class Session:
    def __init__(self, tilt: Tilt, cluster: Cluster):
        self.tilt, self.cluster = tilt, cluster
        self.main = tilt.example.parent / "app" / "main.go"
        self.greeting = NO_GREETING

    def started_lines(self) -> list[tuple[float, str]]:
        """(containerd's stamp, greeting) of every start of the example's program, in any of its pods."""
        out = []
        pods = json.loads(self.cluster.run("get", "pod", "-l", "app=example", "-o", "json"))["items"]
        for pod in pods:
            text = self.cluster.run("logs", "--timestamps", pod["metadata"]["name"], "-c", "app", check=False)
            for line in text.splitlines():
                match = STARTED.match(line)
                if match:
                    out.append((stamp(match.group(1)), match.group(3)))
        return out

    def edit(self, round_: int) -> float:
        """Seconds from writing main.go to the new program's first output."""
        text = f"edit {round_} {uuid.uuid4().hex[:6]}"
        written = time.time()
        self.main.write_text(self.main.read_text().replace(self.greeting, json.dumps(text)))
        self.greeting = json.dumps(text)
        started = self.tilt.wait(lambda: next((t for t, g in self.started_lines() if g == text), None),
                                 f"the program to print {text!r}", timeout=WAIT, interval=0.1)
        return started - written

    def wait_settled(self) -> None:
        """Until Tilt has nothing pending and the resource runs in one pod (a rollout is over)."""
        def settled():
            status = self.tilt.get("uiresource", "example")["status"]
            pods = [p for p in json.loads(self.cluster.run("get", "pod", "-l", "app=example", "-o", "json"))["items"]]
            return (status.get("runtimeStatus") == "ok" and status.get("updateStatus") == "ok"
                    and len(pods) == 1)
        self.tilt.wait(settled, "Tilt to settle", timeout=WAIT, interval=0.5, ignoring=(RuntimeError,))


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):8.0f} ms   p95 {percentile(ms, 95):8.0f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="edits of each kind")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the private Docker Engine needs root: sudo make bench")

    began = time.monotonic()
    results: dict[str, list[float]] = {"live update": [], "full rebuild": []}
    with contextlib.ExitStack() as stack:
        docker.clean_stale()
        daemon = docker.DockerDaemon().start()
        stack.callback(daemon.stop)
        docker.import_bases(daemon)
        workdir = Path(tempfile.mkdtemp(prefix="restart-process-bench-kind-"))
        stack.callback(shutil.rmtree, workdir, True)
        kind = Kind(daemon, workdir)
        kind.create()
        stack.callback(kind.delete)
        log(f"cluster ready in {time.monotonic() - began:.0f}s; installing as the README says")
        install_as_the_readme_says(kind)
        sessions = {}
        for key, namespace in (("live update", "bench-live"), ("full rebuild", "bench-rebuild")):
            kind.run("kubectl", "create", "namespace", namespace)
            env = {k: v for k, v in kind.env().items() if k.startswith("DOCKER_") or k in ("PATH", "KIND_CLUSTER_NAME")}
            tilt = Tilt("tilt", kind.kubeconfig, namespace, env)
            if key == "full rebuild":
                without_live_update(tilt.tiltfile)
            stack.enter_context(tilt)
            sessions[key] = Session(tilt, Cluster(kind.kubectl(), namespace, timeout=WAIT))
        for session in sessions.values():
            session.tilt.wait(lambda s=session: s.started_lines(), "the example's first start", timeout=WAIT)
            session.wait_settled()
        log(f"both Tilts running after {time.monotonic() - began:.0f}s; {args.rounds} rounds")
        for i in range(args.rounds):
            for key, session in (sessions.items() if i % 2 == 0 else reversed(sessions.items())):
                results[key].append(session.edit(i))
                session.wait_settled()
            log(f"round {i + 1}: live update {results['live update'][-1] * 1000:.0f} ms, "
                f"full rebuild {results['full rebuild'][-1] * 1000:.0f} ms")
        live = sessions["live update"]
        restarts = [s.get("restartCount") for s in json.loads(live.cluster.run(
            "get", "pod", "-l", "app=example", "-o", "json"))["items"][0]["status"]["containerStatuses"]]
        assert restarts == [0], restarts

    print(f"\nTilt on kind, an edit of main.go -> the new program's first output (containerd's stamp), "
          f"{args.rounds} rounds each, interleaved; run took {time.monotonic() - began:.0f}s")
    for key, values in results.items():
        print(f"  {key:14} {summary(values)}")
    ratio = statistics.median(results["live update"]) / statistics.median(results["full rebuild"])
    print(f"ratio live update / full rebuild: {ratio:.3f}x (median)")
    print("(both include Tilt's 200 ms file-watch debounce and the compile step; the full rebuild adds the\n"
          " image build, `kind load` into the node and a new pod's start)")


if __name__ == "__main__":
    main()
