"""The golden cases: tests/golden/NAME.{yaml,json} -> NAME.injected.yaml (+ NAME.warnings).

NAME.images.json holds the image configs a case assumes the registry has, NAME.facts.json the
cluster the webhook would see (for the delivery); without it, the case is rendered offline.

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py`,
then read the diff: these files are the readable spec of the mutation.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from webhook import cli, inject
from webhook.delivery import ClusterFacts, NodeFacts

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def inputs() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir()
                  if p.suffix in (".yaml", ".json") and ".injected" not in p.name
                  and not p.name.endswith((".images.json", ".facts.json")))


def expected_output(case: Path) -> Path:
    return case.with_name(case.stem + ".injected.yaml")


def expected_warnings(case: Path) -> Path:
    return case.with_name(case.stem + ".warnings")


def image_configs(case: Path) -> Path:
    """NAME.images.json: the image configs a case assumes the registry holds (docker inspect's keys)."""
    return case.with_name(case.stem + ".images.json")


def cluster_facts(case: Path) -> Path:
    """NAME.facts.json: the cluster as the webhook would see it, in the API's own spelling:
    {"apiServerVersion": "v1.35.4", "imageVolumeGate": true, "nodes": [{"name": ..., "kubeletVersion": ...,
    "containerRuntimeVersion": ...}], "podSecurity": {"namespace": "restricted"}}."""
    return case.with_name(case.stem + ".facts.json")


def read_facts(path: Path) -> ClusterFacts:
    raw = json.loads(path.read_text())
    return ClusterFacts(raw.get("apiServerVersion"), raw.get("imageVolumeGate"),
                        tuple(NodeFacts(n["name"], n["kubeletVersion"], n["containerRuntimeVersion"])
                              for n in raw.get("nodes", [])),
                        raw.get("podSecurity", {}))


def run_inject(path: Path, *flags: str, images: Path | None = None, facts: Path | None = None) -> tuple[int, str, str]:
    """Run `restart-process inject -f PATH` in-process; returns (exit code, stdout, stderr).
    Hermetic: no registry is contacted; image configs come from `images` when given, and the
    delivery sees the cluster of `facts` when given (else none, as offline)."""
    out, err = io.StringIO(), io.StringIO()
    extra = ["--no-registry-lookup", "--default-arch=amd64"]
    if images is not None and images.exists():
        extra += ["--image-configs", str(images)]
    seen = read_facts(facts) if facts is not None and facts.exists() else None
    with redirect_stdout(out), redirect_stderr(err):
        try:  # what cli.main does for inject, with the facts handed in
            settings = cli.inject_settings(cli._parser().parse_args(["inject", "-f", str(path), *extra, *flags]))
            code = inject.run(settings, facts=seen)
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
    return code, out.getvalue(), err.getvalue()
