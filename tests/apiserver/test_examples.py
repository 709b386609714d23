"""The example manifest is what the README promises: mutated, and admitted in a restricted namespace."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_example_app_is_mutated_and_passes_restricted(api, core, registered, namespace):
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    for manifest in ("examples/app/k8s.yaml", "examples/skaffold/k8s-watch.yaml"):
        deployment = yaml.safe_load((ROOT / manifest).read_text())
        template = deployment["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "example", **template["metadata"]},
               "spec": template["spec"]}
        created = core.create_namespaced_pod(namespace, pod, dry_run="All")
        assert created.spec.init_containers[0].name == "restart-process-install"
        assert created.spec.containers[0].command[:2] == ["/restart-process/restart-wrapper", "run"]
        assert any(a.startswith("--watch=") for a in created.spec.containers[0].command)
