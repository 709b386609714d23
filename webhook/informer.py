"""A list-watch cache feeder in a thread: list, then watch from the list's resourceVersion (a shell).

The webhook must not ask the API server anything per admission, so what it needs of the cluster
is kept current by watches, as client-go's informers do: list (in pages), watch from the list's
resourceVersion, resume the watch where it ended when the server closes it, list again on
410 Gone, and on any other error list again after a back-off (1 s doubling to a minute).

Objects are handled as plain JSON (the generated models would cost far more per node event) and
handed to two callbacks, which run in this thread: `on_list(items)` with every object after a
list, `on_event(type, object)` for ADDED, MODIFIED and DELETED.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("restart_process.informer")

PAGE_SIZE = 500
MAX_BACKOFF_SECONDS = 60.0


class _Gone(Exception):
    """The resourceVersion is too old to watch from: list again."""


class Informer:
    def __init__(self, resource: str, list_call, on_list: Callable[[list[dict]], None],
                 on_event: Callable[[str, dict], None], watch_seconds: int):
        """`list_call`: a generated client's list method (`CoreV1Api.list_node`); `watch_seconds`: how
        long the server keeps each watch open before it is resumed."""
        self.resource = resource
        self.list_call = list_call
        self.on_list = on_list
        self.on_event = on_event
        self.watch_seconds = watch_seconds
        self._stop = threading.Event()
        self._response = None  # the open watch, so that stop() can cut it short
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.resource}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the thread's read of the watch
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                version = self._list()
                while not self._stop.is_set():
                    version = self._watch(version)
                    backoff = 1.0  # a watch that ran its course: the connection is sound
            except _Gone:
                log.info("watch expired, listing again", extra={"fields": {"resource": self.resource}})
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning("list or watch failed, retrying", extra={"fields": {
                    "resource": self.resource, "error": describe(error), "retry_seconds": backoff}})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _list(self) -> str:
        items, token = [], None
        while True:
            page = json.loads(self.list_call(limit=PAGE_SIZE, _continue=token, _preload_content=False,
                                              _request_timeout=(10, 60)).data)
            items += page.get("items") or []
            token = page["metadata"].get("continue")
            if not token:
                break
        self.on_list(items)
        return page["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> str:
        """One watch from `version`, until the server ends it; returns the version to resume from."""
        try:
            response = self.list_call(watch=True, resource_version=version, allow_watch_bookmarks=True,
                                      timeout_seconds=self.watch_seconds, _preload_content=False,
                                      _request_timeout=(10, self.watch_seconds + 30))
        except ApiException as error:
            if error.status == 410:
                raise _Gone from None
            raise
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, obj)
        finally:
            self._response = None
            response.close()
        return version


def describe(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"
