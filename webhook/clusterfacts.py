"""What the delivery choice needs to know of the cluster, kept current without a request per admission (a shell).

- nodes: each one's kubelet and runtime versions (status.nodeInfo), from a list-watch cache;
- namespaces: each one's Pod Security enforce level, from a list-watch cache. A namespace the
  cache does not hold yet (created a moment before its first pod) is read once with GET, and only
  where the level can matter (an API server before 1.33, see `delivery`);
- the API server: its version (/version) and its ImageVolume feature gate (/metrics,
  `kubernetes_feature_enabled{name="ImageVolume"}`), read at start and every few minutes. When
  /metrics cannot be read (forbidden, or not served), the gate is taken to be its version's
  default, and that is logged once.

`facts_for(namespace)` returns an immutable `ClusterFacts` snapshot for the pure core to decide
from (`delivery.choose_delivery`). The watches run in threads (`informer`); the periodic reads
are a background task of `serve`, like the certificate reloads. The kubernetes client is imported
only by a `ClusterWatch`: a server that does not read the cluster never loads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterable

from .delivery import ClusterFacts, NodeFacts

log = logging.getLogger("restart_process.clusterfacts")

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
REFRESH_SECONDS = 300.0  # the API server's version and gates change only when it is restarted
NAMESPACE_GET_SECONDS = 1.0  # well inside the admission's budget
WATCH_SECONDS = 300  # the server ends each watch after this; it is then resumed, not relisted
_GATE_LINE = re.compile(r'kubernetes_feature_enabled\{(?:[^}]*,)?name="ImageVolume"[,}][^ ]*\s+(\S+)')


class FixedFacts:
    """Facts that never change: for a webhook that does not read the cluster."""

    def __init__(self, facts: ClusterFacts | None = None):
        self.facts = facts or ClusterFacts()

    async def facts_for(self, namespace: str | None) -> ClusterFacts:
        return self.facts


class ClusterWatch:
    """Start with `run()` as a background task; `facts_for` answers from memory (or one GET)."""

    def __init__(self, api, refresh_seconds: float = REFRESH_SECONDS, watch_seconds: int = WATCH_SECONDS):
        """`api`: a kubernetes ApiClient."""
        from kubernetes import client

        from .informer import Informer

        self.api = api
        self.refresh_seconds = refresh_seconds
        self._core = client.CoreV1Api(api)
        self._version_api = client.VersionApi(api)
        self._lock = threading.Lock()  # the watch threads and the event loop both publish
        self._nodes: dict[str, NodeFacts] = {}
        self._levels: dict[str, str] = {}
        self._node_snapshot: tuple[NodeFacts, ...] = ()
        self._level_snapshot: dict[str, str] = {}
        self._version: str | None = None
        self._gate: bool | None = None
        self._gate_unreadable: str | None = None  # why /metrics said nothing, once logged
        self._fetched: set[str] = set()  # namespaces read with GET: never twice
        self.facts = ClusterFacts()
        self._informers = [
            Informer("nodes", self._core.list_node, self._nodes_listed, self._node_event, watch_seconds),
            Informer("namespaces", self._core.list_namespace, self._namespaces_listed, self._namespace_event,
                     watch_seconds),
        ]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for informer in self._informers:
            informer.start()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

    async def run(self) -> None:
        self.start()
        try:
            while True:
                await asyncio.to_thread(self.refresh_api_server)
                await asyncio.sleep(self.refresh_seconds)
        finally:
            await asyncio.to_thread(self.stop)

    # --- what the admissions ask -----------------------------------------------------------

    async def facts_for(self, namespace: str | None) -> ClusterFacts:
        facts = self.facts
        if (namespace is None or not facts.namespaces_matter or namespace in facts.pod_security
                or namespace in self._fetched):
            return facts
        self._fetched.add(namespace)
        try:
            raw = await asyncio.wait_for(asyncio.to_thread(self._read_namespace, namespace), NAMESPACE_GET_SECONDS)
        except Exception as error:  # forbidden, gone, late: its level stays unknown, and holds nothing back
            log.warning("reading a namespace not yet in the cache failed",
                        extra={"fields": {"namespace": namespace, "error": _describe(error)}})
            return self.facts
        with self._lock:
            if namespace not in self._levels:  # the watch may have brought it meanwhile
                self._levels[namespace] = enforce_level(raw)
                self._level_snapshot = dict(self._levels)
                self._publish()
        return self.facts

    def _read_namespace(self, name: str) -> dict:
        return json.loads(self._core.read_namespace(name, _preload_content=False,
                                                    _request_timeout=NAMESPACE_GET_SECONDS).data)

    # --- the API server --------------------------------------------------------------------

    def refresh_api_server(self) -> None:
        try:
            version = self._version_api.get_code(_request_timeout=10).git_version
        except Exception as error:
            log.warning("reading the API server's version failed", extra={"fields": {"error": _describe(error)}})
            version = self._version
        gate = self._read_gate(version)
        with self._lock:
            changed = (version, gate) != (self._version, self._gate)
            self._version, self._gate = version, gate
            self._publish()
        if changed:
            log.info("API server", extra={"fields": {"version": version, "image_volume_gate": gate,
                                                     "gate_from": "metrics" if gate is not None else "default"}})

    def _read_gate(self, version: str | None) -> bool | None:
        """The ImageVolume gate as /metrics reports it; None when it cannot be read (then the
        core takes the version's default). Other failures keep what was known."""
        from kubernetes.client.rest import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        try:
            method, url, headers, _, _ = self.api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
            response = self.api.call_api(method, url, {**headers, "Accept": "text/plain"}, _request_timeout=(10, 30))
            try:
                if not 200 <= response.status <= 299:
                    raise ApiException(status=response.status, reason=response.reason)
                gate = gate_from_metrics(iter_resp_lines(response.response))
            finally:
                response.response.close()  # read only as far as the gate's line
        except ApiException as error:
            if error.status not in (401, 403, 404):
                log.warning("reading the API server's /metrics failed", extra={"fields": {"error": _describe(error)}})
                return self._gate
            return self._unreadable(f"/metrics answered {error.status} {error.reason}", version)
        except Exception as error:
            log.warning("reading the API server's /metrics failed", extra={"fields": {"error": _describe(error)}})
            return self._gate
        if gate is None:
            return self._unreadable("/metrics has no kubernetes_feature_enabled for ImageVolume", version)
        self._gate_unreadable = None
        return gate

    def _unreadable(self, why: str, version: str | None) -> None:
        """No reading: log it once (per reason), and let the version's default stand."""
        if self._gate_unreadable != why:
            self._gate_unreadable = why
            log.warning("the API server's ImageVolume gate cannot be read; taking its version's default "
                        "(on from 1.35, off before)", extra={"fields": {"why": why, "version": version}})
        return None

    # --- the caches (called in the watch threads) ------------------------------------------

    def _nodes_listed(self, items: list[dict]) -> None:
        with self._lock:
            self._nodes = {node.name: node for node in map(node_facts, items)}
            self._publish_nodes()

    def _node_event(self, kind: str, obj: dict) -> None:
        node = node_facts(obj)
        with self._lock:
            if kind == "DELETED":
                if self._nodes.pop(node.name, None) is not None:
                    self._publish_nodes()
            elif self._nodes.get(node.name) != node:  # heartbeats change nothing we keep
                self._nodes[node.name] = node
                self._publish_nodes()

    def _namespaces_listed(self, items: list[dict]) -> None:
        with self._lock:
            self._levels = {_name(item): enforce_level(item) for item in items}
            self._level_snapshot = dict(self._levels)
            self._publish()

    def _namespace_event(self, kind: str, obj: dict) -> None:
        name = _name(obj)
        with self._lock:
            if kind == "DELETED":
                if self._levels.pop(name, None) is None:
                    return
            elif self._levels.get(name) == (level := enforce_level(obj)):
                return
            else:
                self._levels[name] = level
            self._level_snapshot = dict(self._levels)
            self._publish()

    def _publish_nodes(self) -> None:
        self._node_snapshot = tuple(sorted(self._nodes.values(), key=lambda n: n.name))
        self._publish()

    def _publish(self) -> None:
        """A new snapshot; callers hold the lock. The snapshots are never changed once published."""
        self.facts = ClusterFacts(self._version, self._gate, self._node_snapshot, self._level_snapshot)


def node_facts(node: dict) -> NodeFacts:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return NodeFacts(_name(node), info.get("kubeletVersion") or "", info.get("containerRuntimeVersion") or "",
                     info.get("operatingSystem") or "linux")


def enforce_level(namespace: dict) -> str:
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    return labels.get(ENFORCE_LABEL) or ""


def gate_from_metrics(lines: Iterable[str]) -> bool | None:
    """The ImageVolume gate from Prometheus text: `kubernetes_feature_enabled{name="ImageVolume",
    stage="BETA"} 1`; None when the line is not there."""
    for line in lines:
        if line.startswith("kubernetes_feature_enabled{"):
            match = _GATE_LINE.match(line)
            if match:
                return float(match[1]) == 1.0
    return None


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _describe(error: Exception) -> str:
    from .informer import describe

    return describe(error)
