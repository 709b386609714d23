"""Rendering the chart with the helm binary that hack/build-control-plane.sh builds."""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

import yaml

from tests.support.binaries import find_binary

CHART = Path(__file__).resolve().parents[2] / "charts" / "restart-process-webhook"


@cache
def helm() -> str:
    return str(find_binary("helm"))


def render(*sets: str, release: str = "rpw", namespace: str = "rp-system", kube_version: str | None = None,
           hooks: bool = False, values: dict | None = None) -> list[dict]:
    """The chart's objects as `helm install` creates them; with `hooks`, the `helm test` pod too.
    `values`: a values file's content (`-f`), for structures `--set` spells badly."""
    argv = [helm(), "template", release, str(CHART), "--namespace", namespace]
    if not hooks:
        argv.append("--no-hooks")
    with tempfile.TemporaryDirectory(prefix="rpw-values-") as directory:
        if values is not None:
            path = Path(directory) / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            argv += ["-f", str(path)]
        for value in sets:
            argv += ["--set", value]
        if kube_version:
            argv += ["--kube-version", kube_version]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class RenderError(Exception):
    pass


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


SECRET_MODE = ("tls.mode=secret", "tls.secret.name=my-tls", "tls.secret.caBundle=Q0EK")
