"""The webhook side of the integration harness: the real server process and small helpers."""

from __future__ import annotations

import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from webhook.registration import with_ca_bundle
from webhook.tls import generate_self_signed

from ..ports import free_port
from ..processes import stop


class WebhookServer:
    """`restart-process serve` as a process, with its own CA (as a real deployment would have)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="restart-process-webhook-"))
        self.certs = generate_self_signed(self.dir, ["127.0.0.1"])
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.context = ssl.create_default_context(cafile=str(self.certs.ca_file))
        self.process = None

    def start(self) -> "WebhookServer":
        self.log = open(self.dir / "serve.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--tls-cert-file", str(self.certs.cert_file), "--tls-key-file", str(self.certs.key_file)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, (self.dir / "serve.log").read_text()
            try:
                if httpx.get(self.url + "/readyz", verify=self.context, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "webhook server did not become ready"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process:
            stop(self.process)
            self.log.close()

    def admissions(self) -> float:
        """How many reviews the server has answered, whatever the outcome."""
        text = httpx.get(self.url + "/metrics", verify=self.context).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("restart_process_admissions_total{"))

    def client_config(self) -> dict:
        return with_ca_bundle({"url": self.url + "/mutate"}, self.certs.ca_file.read_bytes())


def annotated_pod(name: str, annotations: dict | None = None, **container) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"restart-process.dev/enabled": "true", **(annotations or {})}},
        "spec": {"containers": [{"name": "app", "image": "localhost:5000/app:dev", "command": ["/app/server"],
                                 "args": ["--port=8080"], **container}]},
    }


def wait_for_mutation(core, namespace: str, timeout: float = 30) -> None:
    """A webhook is ready only once a dry-run create comes back mutated (cert-manager's check)."""
    deadline = time.monotonic() + timeout
    while True:
        pod = core.create_namespaced_pod(namespace, annotated_pod(f"probe-{uuid.uuid4().hex[:8]}"), dry_run="All")
        if pod.spec.init_containers:
            return
        assert time.monotonic() < deadline, "the API server never applied the webhook"
        time.sleep(0.2)
