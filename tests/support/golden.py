"""The golden cases: tests/golden/NAME.{yaml,json} -> NAME.injected.yaml (+ NAME.warnings).

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py`,
then read the diff: these files are the readable spec of the mutation.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from webhook import cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def inputs() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir()
                  if p.suffix in (".yaml", ".json") and ".injected" not in p.name and not p.name.endswith(".images.json"))


def expected_output(case: Path) -> Path:
    return case.with_name(case.stem + ".injected.yaml")


def expected_warnings(case: Path) -> Path:
    return case.with_name(case.stem + ".warnings")


def image_configs(case: Path) -> Path:
    """NAME.images.json: the image configs a case assumes the registry holds (docker inspect's keys)."""
    return case.with_name(case.stem + ".images.json")


def run_inject(path: Path, *flags: str, images: Path | None = None) -> tuple[int, str, str]:
    """Run `restart-process inject -f PATH` in-process; returns (exit code, stdout, stderr).
    Hermetic: no registry is contacted; image configs come from `images` when given."""
    out, err = io.StringIO(), io.StringIO()
    extra = ["--no-registry-lookup", "--default-arch=amd64"]
    if images is not None and images.exists():
        extra += ["--image-configs", str(images)]
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["inject", "-f", str(path), *extra, *flags])
    return code, out.getvalue(), err.getvalue()
