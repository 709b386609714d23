"""Each node configuration runs the runtime it claims to: the version the kubelet reports to the
API server (what the webhook's `auto` delivery reads) is containerd 2's for the default node and
Debian's 1.6 for the second one."""

from __future__ import annotations

import pytest

from tests.support.versions import pinned
from .node import CONTAINERD_1_6, CONTAINERD_2, NODE_NAME

EXPECTED_PREFIX = {
    CONTAINERD_2: f"containerd://{pinned('CONTAINERD_VERSION').removeprefix('v')}",
    CONTAINERD_1_6: "containerd://1.6.",
}


@pytest.mark.both_runtimes
def test_the_node_reports_the_runtime_it_runs(node_runtime, node, node_core):
    info = node_core.read_node(NODE_NAME).status.node_info
    assert info.container_runtime_version.startswith(EXPECTED_PREFIX[node_runtime]), info.container_runtime_version
    assert info.kubelet_version == pinned("KUBERNETES_VERSION")
