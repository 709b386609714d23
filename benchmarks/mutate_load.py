"""Throughput of POST /mutate against a no-op endpoint on the same server, driven by `wrk`.

The server is the real app on uvicorn over TLS on loopback, one process, with one extra route,
/noop, that reads the body and answers a constant: the difference is what admission costs
(parsing, planning, the mutation, the patch, the response, logging, metrics). A real load
generator, because a Python client is slower than the server and hides the difference.
Rounds alternate between the two endpoints so machine noise hits both alike.

    .venv/bin/python -m benchmarks.mutate_load [--seconds S] [--rounds R] [--source DIR]

`--source` runs the server from another checkout (to compare before and after a change).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.processes import stop
from tests.support.reviews import pod_review
from tests.support.waiting import wait_until
from webhook.tls import generate_self_signed

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
sys.path.insert(0, sys.argv[4])
import uvicorn
from fastapi import Request
from fastapi.responses import JSONResponse
from webhook.app import create_app
from webhook.config import InjectorConfig
from webhook import logs

logs.configure("info")
# As `serve` runs it by default: registry lookups on (the typical pod has a command, so none is made).
try:
    from webhook.config import LookupSettings
    from webhook.lookup import ImageLookup
    lookup = ImageLookup(LookupSettings())
except ImportError:  # a checkout from before webhook.config.LookupSettings (--source)
    from webhook.lookup import ImageLookup
    from webhook.registry import RegistryClient, Resolver
    lookup = ImageLookup(InjectorConfig(), Resolver(RegistryClient()), "amd64")
app = create_app(InjectorConfig(), lookup=lookup)

@app.post("/noop")
async def noop(request: Request):
    await request.body()
    return JSONResponse({"ok": True})

cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
uvicorn.run(app, host="127.0.0.1", port=port, ssl_certfile=cert, ssl_keyfile=key, log_config=None, access_log=False)
"""

TYPICAL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "web-7d4b9c-",
        "namespace": "dev",
        "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
        "annotations": {"restart-process.dev/enabled": "true", "restart-process.dev/watch": "/app/bin"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "0" * 36,
                             "controller": True, "blockOwnerDeletion": True}],
    },
    "spec": {
        "containers": [{
            "name": "web", "image": "localhost:5000/web:tilt-1a2b3c4d", "command": ["/app/bin/web"],
            "args": ["--port=8080"], "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": f"VAR_{i}", "value": "x" * 20} for i in range(10)],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}],
            "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
        }],
        "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
    },
}

POST_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict:
    """One wrk run: requests per second and latency percentiles (ms); fails on any non-2xx answer."""
    result = subprocess.run(
        ["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds:g}s",
         "--latency", "--script", str(script), url],
        capture_output=True, text=True, check=True)
    out = result.stdout
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    percentiles = {int(p): _ms(value, unit) for p, value, unit in
                   re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)}
    return {"rate": rate, "p50": percentiles[50], "p99": percentiles[99]}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint and connection count")
    parser.add_argument("--connections", default="1,8,64", help="comma-separated wrk connection counts")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose webhook/ the server runs")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `make bench` installs it (Debian package wrk)")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = generate_self_signed(directory, ["127.0.0.1"])
        body = directory / "review.json"
        body.write_text(json.dumps(pod_review(TYPICAL_POD, "dev")))
        size = body.stat().st_size
        script = directory / "post.lua"
        script.write_text(POST_SCRIPT.format(body=body))
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(certs.cert_file), str(certs.key_file), str(port), str(args.source.resolve())],
            stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(certs.ca_file))) as client:
                wait_until(lambda: client.get("/healthz").status_code == 200, 20, interval=0.1,
                           what="the server", ignoring=(httpx.HTTPError,), process=server)
                answer = client.post("/mutate", content=body.read_bytes(), headers={"content-type": "application/json"})
                assert answer.json()["response"].get("patchType") == "JSONPatch", "the typical pod must be mutated"
            connections = [int(c) for c in args.connections.split(",")]
            results = {(path, c): [] for c in connections for path in ("/mutate", "/noop")}
            for c in connections:
                wrk(url + "/mutate", script, c, 1)  # warm up both paths
                wrk(url + "/noop", script, c, 1)
                for _ in range(args.rounds):
                    for path in ("/mutate", "/noop"):
                        results[(path, c)].append(wrk(url + path, script, c, args.seconds))
        finally:
            assert stop(server), "the server did not stop on SIGTERM"

    print(f"wrk, 1 thread, POST of a {size}-byte AdmissionReview of a typical "
          f"annotated pod, TLS on loopback, one server process ({args.source}); median of {args.rounds} x {args.seconds:g}s")
    print(f"{'conns':>5} {'endpoint':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for c in connections:
        rates = {}
        for path in ("/mutate", "/noop"):
            runs = results[(path, c)]
            rates[path] = statistics.median(r["rate"] for r in runs)
            print(f"{c:5} {path:8} {rates[path]:8.0f} {statistics.median(r['p50'] for r in runs):8.2f} "
                  f"{statistics.median(r['p99'] for r in runs):8.2f}")
        print(f"{c:5} ratio /mutate vs /noop throughput: {rates['/mutate'] / rates['/noop']:.2f}x")


if __name__ == "__main__":
    main()
