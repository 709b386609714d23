"""The real `restart-process serve` stopping: with --shutdown-delay it drains first -- not ready,
still answering, asking every client to close its connection -- then stops; without, it stops at
once. (The chart's rollout on kind, tests/e2e, shows what this buys: no pod let through uninjected.)"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.support.reviews import pod_review
from tests.support.webhook_server import WebhookServer, annotated_pod
from tests.support.waiting import wait_until


def _review() -> dict:
    return pod_review(annotated_pod("drained"))


@pytest.fixture
def draining_server():
    server = WebhookServer("--shutdown-delay", "2").start()
    yield server
    server.close()


def test_sigterm_drains_then_stops(draining_server):
    server = draining_server
    with server.client() as kept_alive:
        before = kept_alive.post("/mutate", json=_review())
        assert before.status_code == 200 and before.headers.get("connection") != "close"

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: httpx.get(server.url + "/readyz", verify=server.context).status_code == 503,
                   timeout=2, interval=0.05, what="/readyz to fail")
        assert httpx.get(server.url + "/readyz", verify=server.context).text == "shutting down"

        # Still answering, on the kept-alive connection and on new ones, and telling each to close.
        during = kept_alive.post("/mutate", json=_review())
        assert during.status_code == 200 and during.json()["response"]["patch"]
        assert during.headers["connection"] == "close"
        fresh = httpx.post(server.url + "/mutate", json=_review(), verify=server.context)
        assert (fresh.status_code, fresh.headers["connection"]) == (200, "close")
        assert server.process.poll() is None

    server.process.wait(timeout=10)
    stopped_after = time.monotonic() - signalled
    assert 1.8 <= stopped_after < 8, stopped_after
    assert "SIGTERM: draining before stopping" in server.output()


def test_a_second_sigterm_or_sigint_stops_at_once(draining_server):
    server = draining_server
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "draining" in server.output(), timeout=2, interval=0.05, what="the drain to start")
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=5)
    assert time.monotonic() - signalled < 1.5


def test_without_a_delay_sigterm_stops_at_once():
    server = WebhookServer().start()
    try:
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=5)
        assert time.monotonic() - signalled < 1.5
        assert "draining" not in server.output()
    finally:
        server.close()
