"""The real `restart-process serve` as a process, with its own CA, and small helpers around it."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from webhook.registration import with_ca_bundle
from webhook.tls import generate_self_signed

from .janitor import run_directory
from .ports import free_port
from .processes import die_with_parent, stop
from .waiting import wait_until


# Tests never reach the internet: images without a registry (`example-app`) are looked up on
# Docker Hub, which this sends to a closed loopback port, so such a lookup fails at once.
OFFLINE = ("--registry-aliases", "registry-1.docker.io=127.0.0.1:9")


class WebhookServer:
    """`restart-process serve` on loopback over TLS, as a real deployment would run it. Always `stop()`."""

    def __init__(self, *extra_args: str, directory: Path | None = None):
        self.owns_dir = directory is None  # then close() removes it
        self.dir = directory or run_directory("restart-process-webhook-")
        self.certs = generate_self_signed(self.dir, ["127.0.0.1"])
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.context = ssl.create_default_context(cafile=str(self.certs.ca_file))
        self.extra_args = extra_args
        self.process = None

    def start(self) -> WebhookServer:
        self.log = open(self.dir / "serve.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--tls-cert-file", str(self.certs.cert_file), "--tls-key-file", str(self.certs.key_file),
             *OFFLINE, *self.extra_args],  # a test's own --registry-aliases replaces these
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
        try:
            wait_until(lambda: httpx.get(self.url + "/readyz", verify=self.context, timeout=1).status_code == 200,
                       timeout=30, interval=0.1, what="the webhook server to be ready", ignoring=(httpx.HTTPError,),
                       process=self.process)
        except AssertionError as error:
            self.stop()
            raise AssertionError(f"{error}\n{self.output()}") from None
        return self

    def stop(self) -> bool:
        """True when the server exited by itself on SIGTERM."""
        if self.process is None:
            return True
        exited = stop(self.process)
        self.log.close()
        return exited

    def close(self) -> bool:
        """stop(), and remove the certificates and log this server made (stop() keeps them: a test
        may start it again)."""
        exited = self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return exited

    def output(self) -> str:
        return (self.dir / "serve.log").read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.context)

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


def delivery_of(pod: dict) -> str | None:
    """How the webhook delivered the wrapper to a pod (its status annotation), or None: not injected."""
    status = (pod.get("metadata", {}).get("annotations") or {}).get("restart-process.dev/injected")
    return json.loads(status)["delivery"]["mode"] if status else None


def wait_for_mutation(core, namespace: str, timeout: float = 30, delivery: str | None = None) -> None:
    """A webhook is ready only once a dry-run create comes back mutated (cert-manager's check) --
    and, given `delivery`, mutated that way (the webhook has seen the nodes that decide it)."""
    def mutated():
        pod = core.create_namespaced_pod(namespace, annotated_pod(f"probe-{uuid.uuid4().hex[:8]}"), dry_run="All")
        got = delivery_of(core.api_client.sanitize_for_serialization(pod))
        return got is not None and (delivery is None or got == delivery)

    wait_until(mutated, timeout, interval=0.2, what=f"the API server to apply the webhook ({delivery or 'any delivery'})")
