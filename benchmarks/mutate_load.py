"""Load benchmark of POST /mutate against a no-op endpoint served by the same server process.

The server is the real app on uvicorn over TLS on loopback, with one extra route, /noop, that
reads the body and answers a constant: the difference is what admission costs (JSON parsing,
the mutation, the JSON patch, logging, metrics). Both endpoints get the same AdmissionReview
of a typical annotated pod, alternating in blocks so machine noise hits both alike.

    .venv/bin/python benchmarks/mutate_load.py [--requests N] [--concurrency C] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stats import percentile  # noqa: E402
from tests.admission_reviews import pod_review  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.processes import stop  # noqa: E402
from webhook.tls import generate_self_signed  # noqa: E402

SERVER = """
import logging, sys
import uvicorn
from fastapi import Request
from fastapi.responses import JSONResponse
from webhook.app import create_app
from webhook.config import InjectorConfig
from webhook import logs

logs.configure("info")
app = create_app(InjectorConfig())

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


def latencies(client: httpx.Client, path: str, body: bytes, n: int) -> list[float]:
    result = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        result.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return result


def throughput(url: str, context: ssl.SSLContext, path: str, body: bytes, concurrency: int, seconds: float) -> float:
    counts = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, verify=context) as client:
            while time.perf_counter() < stop_at:
                client.post(path, content=body, headers={"content-type": "application/json"})
                counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint, for throughput")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        certs = generate_self_signed(Path(tmp), ["127.0.0.1"])
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(certs.cert_file), str(certs.key_file), str(port)],
                                  cwd=ROOT, stderr=subprocess.DEVNULL)
        url = f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(certs.ca_file))
        try:
            with httpx.Client(base_url=url, verify=context) as client:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        client.get("/healthz")
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                body = json.dumps(pod_review(TYPICAL_POD, "dev")).encode()
                check = client.post("/mutate", content=body, headers={"content-type": "application/json"}).json()
                assert check["response"].get("patchType") == "JSONPatch", "the typical pod must be mutated"
                latencies(client, "/mutate", body, 200)  # warm up both paths
                latencies(client, "/noop", body, 200)
                results = {"/mutate": [], "/noop": []}
                block = 100
                for _ in range(max(1, args.requests // block)):
                    for path in results:
                        results[path] += latencies(client, path, body, block)
            rates = {path: throughput(url, context, path, body, args.concurrency, args.seconds) for path in results}
        finally:
            assert stop(server), "the server did not stop on SIGTERM"

    print(f"POST with a {len(body)}-byte AdmissionReview of a typical annotated pod, TLS on loopback, one server process")
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}  (latency: {len(results['/mutate'])} sequential; "
          f"throughput: {args.concurrency} clients x {args.seconds:.0f}s)")
    for path, values in results.items():
        print(f"{path:8} {statistics.median(values):8.3f} {percentile(values, 99):8.3f} {rates[path]:8.0f}")
    print(f"ratio /mutate vs /noop: p50 {statistics.median(results['/mutate']) / statistics.median(results['/noop']):.2f}x, "
          f"p99 {percentile(results['/mutate'], 99) / percentile(results['/noop'], 99):.2f}x, "
          f"throughput {rates['/mutate'] / rates['/noop']:.2f}x")


if __name__ == "__main__":
    main()
