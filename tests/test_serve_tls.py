"""The real `restart-process serve` process over HTTPS on loopback, including a certificate swap on disk."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from webhook.tls import generate_self_signed

from tests.support.reviews import apply_response, pod_review
from tests.support.golden import GOLDEN, expected_output
from tests.support.ports import free_port
from tests.support.processes import stop
from tests.support.waiting import wait_until


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


def trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def wait_ready(url: str, ca: Path, process: subprocess.Popen, timeout: float = 20) -> None:
    wait_until(lambda: httpx.get(url + "/readyz", verify=trust(ca), timeout=1).status_code == 200, timeout,
               interval=0.1, what="the server to be ready", ignoring=(httpx.HTTPError,), process=process)


@pytest.fixture
def server(tmp_path):
    first = generate_self_signed(tmp_path / "first", ["localhost", "127.0.0.1"])
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.cert_file, live / "tls.crt")
    shutil.copy(first.key_file, live / "tls.key")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-cert-file", str(live / "tls.crt"), "--tls-key-file", str(live / "tls.key"),
         "--tls-reload-interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        wait_ready(url, first.ca_file, process)
        yield url, port, first, live, tmp_path, process
    finally:
        stop(process)


def test_https_admission_and_certificate_swap(server):
    url, port, first, live, tmp_path, process = server
    pod = yaml.safe_load((GOLDEN / "command-args.yaml").read_text())

    with httpx.Client(base_url=url, verify=trust(first.ca_file)) as client:
        response = client.post("/mutate", json=pod_review(pod)).json()["response"]
        assert apply_response(pod, response) == yaml.safe_load(expected_output(GOLDEN / "command-args.yaml").read_text())
        assert served_certificate(port) == pem_to_der(first.cert_file)

        # Rotate: a new CA and certificate written over the files the server reads.
        second = generate_self_signed(tmp_path / "second", ["localhost", "127.0.0.1"])
        shutil.copy(second.key_file, live / ".tls.key.new")
        shutil.copy(second.cert_file, live / ".tls.crt.new")
        os.replace(live / ".tls.key.new", live / "tls.key")
        os.replace(live / ".tls.crt.new", live / "tls.crt")

        wait_until(lambda: served_certificate(port) == pem_to_der(second.cert_file), 10, interval=0.1,
                   what="the server to serve the new certificate")
        # The connection opened before the swap still works (it was not dropped).
        assert client.get("/healthz").status_code == 200

    with httpx.Client(base_url=url, verify=trust(second.ca_file)) as client:
        assert client.post("/mutate", json=pod_review(pod)).json()["response"]["patchType"] == "JSONPatch"
    with pytest.raises(httpx.ConnectError):  # the old CA no longer vouches for the server
        httpx.get(url + "/healthz", verify=trust(first.ca_file))
    assert process.poll() is None


def test_plain_http_is_refused(server):
    url, port, *_ = server
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_self_signed_when_no_certificate_is_given(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-dir", str(tmp_path / "tls")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        ca = tmp_path / "tls" / "ca.crt"
        wait_until(ca.exists, 20, interval=0.05, what="the generated CA", process=process)
        wait_ready(f"https://localhost:{port}", ca, process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert str(ca) in stderr.decode()  # the log says where the CA is
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status reports it.
    assert process.returncode in (0, -signal.SIGTERM)


def test_half_given_certificate_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", "--tls-cert-file", str(tmp_path / "x")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and "go together" in result.stderr


def test_sigterm_with_an_idle_keep_alive_connection_exits_promptly(server):
    """The API server keeps connections to webhooks open; shutdown must not wait on them forever."""
    url, port, first, live, tmp_path, process = server
    client = httpx.Client(base_url=url, verify=trust(first.ca_file))
    try:
        assert client.get("/healthz").status_code == 200  # leaves an idle keep-alive TLS connection
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        assert time.monotonic() - started < 8
    finally:
        client.close()


def test_a_kubeconfig_that_does_not_load_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", "--port", "0", "--tls-dir", str(tmp_path),
         "--discover-local-registry", "--kubeconfig", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("restart-process serve: cannot talk to the API server")
