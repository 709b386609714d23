"""Stopping without letting pods through uninjected.

The chart's webhook fails open (`failurePolicy: Ignore`): a replica that stops listening while
the API server still sends it admissions lets those pods through unwrapped, and nobody is told
(the API server only records an audit annotation). Kubernetes sends SIGTERM at the moment it
starts taking the pod out of the Service's endpoints, and kube-proxy and the API server's
keep-alive connections catch up over the next seconds. So on SIGTERM the server first drains:

- /readyz answers 503, so nothing new is routed here;
- every response carries `Connection: close`, so a client holding a keep-alive connection to
  this replica opens its next one through the Service, which now leads elsewhere;
- it keeps accepting and answering for `drain_seconds`, then stops as uvicorn does (in-flight
  requests finish, idle connections are closed).

A second SIGTERM, or SIGINT (^C), stops at once.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

log = logging.getLogger("restart_process")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float):
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.stop_at: float | None = None  # set by SIGTERM: when the drain ends

    @property
    def draining(self) -> bool:
        return self.stop_at is not None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not self.draining and not self.should_exit:
            self.stop_at = time.monotonic() + self.drain_seconds
            log.info("SIGTERM: draining before stopping",
                     extra={"fields": {"drain_seconds": self.drain_seconds}})
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.stop_at is not None and not self.should_exit and time.monotonic() >= self.stop_at:
            # As if the SIGTERM arrived now: uvicorn stops, then re-raises it on the way out.
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def close_connections_while(draining, app):
    """ASGI middleware: while `draining()`, every HTTP response asks the client to close the
    connection after it."""

    async def closing(scope, receive, send):
        if scope["type"] != "http" or not draining():
            await app(scope, receive, send)
            return

        async def send_with_close(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_with_close)

    return closing
