"""How the wrapper reaches a pod: an init container that copies it, or an image volume (pure).

Both put the same files at /restart-process (`restart-wrapper`, and `bin/{tar,rm,test}` linked to
it): the init container's `install` lays them down in an emptyDir; the wrapper image holds them at
its root, so mounting it as an image volume (KEP-4639) gives the same paths without an init
container -- which saves every wrapped pod about a second at start (the kubelet's PLEG relist).

An image volume is only safe where the whole path can take it, and a mistake is costly:
- an API server with the ImageVolume gate off drops the volume *and its mounts* after mutating
  admission and stores the pod, without a word, whose command then points at nothing (the
  container cannot start) -- seen on v1.35.4 (tests/apiserver/test_delivery.py);
- Pod Security "restricted" runs after mutating webhooks, and before 1.33 it refuses `image`
  volumes as an unknown type: the pod would be rejected. From 1.33 (kubernetes/kubernetes#130394)
  restricted allows them, though the published Pod Security Standards page did not say so yet;
- a runtime without image volumes (containerd < 2.1, CRI-O < 1.31), or a kubelet whose own gate is
  off (the default before 1.35), fails the pod on the node.

So `auto` takes the image volume only when everything we can see says yes; an explicit
`image-volume` is honoured unless the API server or Pod Security would break or reject the pod
(the nodes are the operator's word then). `choose_delivery` decides from data only; the serve
shell (`clusterfacts`) keeps the `ClusterFacts` current, `inject` has none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Delivery(StrEnum):
    AUTO = "auto"
    IMAGE_VOLUME = "image-volume"
    INIT_CONTAINER = "init-container"


# The first API server version whose ImageVolume gate is on by default; also the first kubelet's.
GATE_DEFAULT_ON = (1, 35)
KUBELET_GATE_DEFAULT_ON = (1, 35)
# The runtimes that mount image volumes, by the scheme of status.nodeInfo.containerRuntimeVersion.
RUNTIMES = {"containerd": (2, 1), "cri-o": (1, 31)}
RESTRICTED = "restricted"
# The first API server whose Pod Security "restricted" level allows image volumes.
RESTRICTED_ALLOWS_IMAGE = (1, 33)
VERSION_UNKNOWN = "the API server's version is not known"
_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)", re.ASCII)


@dataclass(frozen=True)
class NodeFacts:
    name: str
    kubelet_version: str  # status.nodeInfo.kubeletVersion: "v1.35.4"
    container_runtime: str  # status.nodeInfo.containerRuntimeVersion: "containerd://2.1.4"
    operating_system: str = "linux"  # status.nodeInfo.operatingSystem


@dataclass(frozen=True)
class ClusterFacts:
    """What the webhook knows of the cluster. Unknown is spelled None (or a missing namespace)."""

    api_server_version: str | None = None  # /version's gitVersion: "v1.35.4"
    image_volume_gate: bool | None = None  # from the API server's /metrics; None: not readable
    nodes: tuple[NodeFacts, ...] = ()
    # Namespace -> its `pod-security.kubernetes.io/enforce` label ("" when it has none).
    pod_security: Mapping[str, str] = field(default_factory=dict)
    # Why nothing is known, when the webhook does not read the cluster at all ("the webhook does not
    # read the cluster (--delivery=init-container)"): said in reasons and warnings.
    unread: str | None = None

    @property
    def gate_on(self) -> bool | None:
        """The API server's ImageVolume gate: as /metrics says, else its version's default."""
        if self.image_volume_gate is not None:
            return self.image_volume_gate
        version = parse_version(self.api_server_version)
        return None if version is None else version >= GATE_DEFAULT_ON

    @property
    def namespaces_matter(self) -> bool:
        """Whether a namespace's Pod Security level can change the choice: only on an API server
        older than 1.33 (or of unknown version), whose "restricted" refuses image volumes."""
        version = parse_version(self.api_server_version)
        return version is None or version < RESTRICTED_ALLOWS_IMAGE

    @functools.cached_property
    def node_problem(self) -> str | None:
        """Why some node cannot mount an image volume, or None when every node can (computed once
        per snapshot, not once per pod)."""
        # Windows nodes never run a wrapped pod (Windows pods are left alone): they do not count.
        linux = [node for node in self.nodes if node.operating_system != "windows"]
        if not linux:
            return "no nodes are known"
        for node in linux:
            problem = _node_problem(node)
            if problem:
                return problem
        return None


class Choice(NamedTuple):
    delivery: Delivery  # IMAGE_VOLUME or INIT_CONTAINER
    reason: str  # recorded in the status annotation
    warning: str | None = None  # an explicit image-volume that could not be honoured


def parse_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of "v1.35.4", "1.31.0-gke.1", "2.1.4+k3s1"; None when there is none."""
    match = _VERSION.match(text) if isinstance(text, str) else None
    return (int(match[1]), int(match[2])) if match else None


def choose_delivery(setting: Delivery, facts: ClusterFacts | None, namespace: str | None,
                    asked_by: str = "--delivery") -> Choice:
    """`facts` None: no cluster to look at (`inject`): `auto` is the init container and an explicit
    `image-volume` is taken at its word. `asked_by` names where the setting came from, for warnings."""
    if setting == Delivery.INIT_CONTAINER:
        return Choice(Delivery.INIT_CONTAINER, f"{Delivery.INIT_CONTAINER} was asked for ({asked_by})")
    if facts is None:
        if setting == Delivery.IMAGE_VOLUME:
            return Choice(Delivery.IMAGE_VOLUME, f"{Delivery.IMAGE_VOLUME} was asked for ({asked_by})")
        return Choice(Delivery.INIT_CONTAINER, "auto without a cluster to check (offline)")
    rejection = _rejection(facts, namespace)
    if setting == Delivery.IMAGE_VOLUME:
        if rejection:
            return Choice(Delivery.INIT_CONTAINER, rejection, (
                f"{Delivery.IMAGE_VOLUME} delivery was asked for ({asked_by}), but {rejection}; "
                f"the wrapper comes by init container instead"))
        return Choice(Delivery.IMAGE_VOLUME, f"{Delivery.IMAGE_VOLUME} was asked for ({asked_by})")
    # auto: only when everything we can see says yes, and without a word otherwise.
    version = parse_version(facts.api_server_version)
    if version is None:
        return Choice(Delivery.INIT_CONTAINER, f"auto: {facts.unread or VERSION_UNKNOWN}")
    if version < GATE_DEFAULT_ON:
        return Choice(Delivery.INIT_CONTAINER, f"auto: the API server is {facts.api_server_version}; "
                                               f"image volumes are on by default from 1.35")
    if rejection:
        return Choice(Delivery.INIT_CONTAINER, f"auto: {rejection}")
    if facts.node_problem:
        return Choice(Delivery.INIT_CONTAINER, f"auto: {facts.node_problem}")
    return Choice(Delivery.IMAGE_VOLUME, f"auto: API server {facts.api_server_version} with ImageVolume on, "
                                         f"every node able to mount image volumes")


def _rejection(facts: ClusterFacts, namespace: str | None) -> str | None:
    """Why the API server would break or reject a pod with an image volume: what even an explicit
    `image-volume` gives way to. A namespace we cannot read is not one: a rejection by Pod Security
    is loud, unlike a dropped volume."""
    gate = facts.gate_on
    if gate is None and facts.unread:
        return f"{facts.unread}, so it cannot tell whether the API server's ImageVolume feature gate is on"
    if gate is None:
        return f"{VERSION_UNKNOWN}, so neither is its ImageVolume feature gate"
    if not gate:
        how = "is off" if facts.image_volume_gate is not None else f"is off by default in {facts.api_server_version}"
        return (f"the API server's ImageVolume feature gate {how} (it would drop the volume and leave "
                f"the wrapped command pointing at nothing)")
    if facts.namespaces_matter and facts.pod_security.get(namespace or "") == RESTRICTED:
        return (f'namespace "{namespace}" enforces Pod Security "{RESTRICTED}", which allows no image volumes '
                f"before Kubernetes 1.33 (the pod would be rejected)")
    return None


def _node_problem(node: NodeFacts) -> str | None:
    scheme, _, version = node.container_runtime.partition("://")
    needed = RUNTIMES.get(scheme)
    have = parse_version(version)
    if needed is None or have is None or have < needed:
        return (f'node "{node.name}" runs {node.container_runtime or "an unknown runtime"}; image volumes need '
                f"containerd 2.1+ or CRI-O 1.31+")
    kubelet = parse_version(node.kubelet_version)
    if kubelet is None or kubelet < KUBELET_GATE_DEFAULT_ON:
        return (f'node "{node.name}" runs kubelet {node.kubelet_version or "of unknown version"}, whose ImageVolume '
                f"gate is off by default before 1.35")
    return None
