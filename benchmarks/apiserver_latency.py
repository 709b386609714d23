"""What a user pays: Pod CREATE latency through a real kube-apiserver with the webhook vs without it.

One control plane, three namespaces, the same annotated pod created in each, alternating in
blocks so machine noise hits all alike:
  without-webhook  no webhook is called (the baseline the target is measured against);
  noop-webhook     a do-nothing FastAPI app on uvicorn with the same TLS answers `allowed` (the
                   floor any webhook on this stack pays, before doing any work);
  with-webhook     restart-process serve, mutating the pod;
  pre-injected     no webhook, but the pod is what `restart-process inject` makes of it: what the
                   bigger object alone costs to validate and store.

    .venv/bin/python -m benchmarks.apiserver_latency [--pods N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

from benchmarks.stats import percentile
from tests.support.controlplane import ControlPlane
from tests.support.webhook_server import WebhookServer, annotated_pod, wait_for_mutation
from webhook.config import InjectorConfig
from webhook.mutate import mutate_pod
from webhook.registration import webhook_configuration

ROOT = Path(__file__).resolve().parents[1]

PATH = "bench.restart-process.dev/path"
NOOP_WEBHOOK = """
import json, sys
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

@app.post("/mutate")
async def mutate(request: Request):
    review = json.loads(await request.body())
    return JSONResponse({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                         "response": {"uid": review["request"]["uid"], "allowed": True}})

@app.get("/readyz")
async def readyz():
    return {}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), ssl_certfile=sys.argv[1], ssl_keyfile=sys.argv[2],
            log_level="warning")
"""


def pod_for(namespace: str, name: str) -> dict:
    pod = annotated_pod(name)
    return mutate_pod(pod, InjectorConfig()).pod if namespace == "pre-injected" else pod


def only(path: str) -> list[dict]:
    return [{"key": PATH, "operator": "In", "values": [path]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=400, help="pods per namespace")
    args = parser.parse_args()

    plane = ControlPlane(with_controller_manager=False).start()
    server = WebhookServer().start()
    noop = WebhookServer()  # only for its certificate and port: the process is the no-op app
    noop.process = subprocess.Popen([sys.executable, "-c", NOOP_WEBHOOK, str(noop.certs.cert_file),
                                     str(noop.certs.key_file), str(noop.port)], cwd=ROOT)
    noop.log = open(noop.dir / "serve.log", "wb")
    try:
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core = client.CoreV1Api(api)
        admission = client.AdmissionregistrationV1Api(api)
        admission.create_mutating_webhook_configuration(webhook_configuration(
            server.client_config(), namespace_selector_extra=only("with-webhook")))
        admission.create_mutating_webhook_configuration(webhook_configuration(
            noop.client_config(), name="noop", namespace_selector_extra=only("noop-webhook")))
        results = {"without-webhook": [], "pre-injected": [], "noop-webhook": [], "with-webhook": []}
        for namespace in results:
            core.create_namespace({"metadata": {"name": namespace, "labels": {PATH: namespace}}})
        wait_for_mutation(core, "with-webhook")

        block, n = 20, 0
        for namespace in results:  # warm up every path
            for i in range(block):
                core.create_namespaced_pod(namespace, pod_for(namespace, f"warm-{i}"))
        while n < args.pods:
            for namespace, latencies in results.items():
                for i in range(n, n + block):
                    started = time.perf_counter()
                    pod = core.create_namespaced_pod(namespace, pod_for(namespace, f"pod-{i}"))
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert bool(pod.spec.init_containers) == (namespace in ("with-webhook", "pre-injected"))
            n += block
    finally:
        server.close()
        noop.close()
        plane.stop()

    print(f"Pod CREATE through kube-apiserver v1.35 (etcd, loopback), {args.pods} annotated pods per namespace")
    print(f"{'':16} {'median ms':>10} {'p95 ms':>10}")
    for namespace, values in results.items():
        print(f"{namespace:16} {statistics.median(values):10.2f} {percentile(values, 95):10.2f}")
    without = results["without-webhook"]
    for namespace in ("pre-injected", "noop-webhook", "with-webhook"):
        values = results[namespace]
        print(f"ratio {namespace}/without-webhook: median {statistics.median(values) / statistics.median(without):.2f}x, "
              f"p95 {percentile(values, 95) / percentile(without, 95):.2f}x")
    print("(target for with-webhook: <= 1.25x)")

if __name__ == "__main__":
    main()
