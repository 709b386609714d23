"""The import rule: the pure core knows nothing of HTTP, files, processes or the API server.

Core modules may import each other, data-only standard modules and orjson (an encoder); the
shells (app, cli, serve, inject, lookup, registry, ...) may import the core, never the other way.
A new import in the core fails here until it is added to the allowlist on purpose.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

WEBHOOK = Path(__file__).resolve().parents[1] / "webhook"
CORE = ("admission", "config", "contract", "delivery", "entrypoint", "images", "manifests", "mutate", "names",
        "patch", "plan", "registration", "synctools")
SHELLS = ("app", "clusterfacts", "cli", "inject", "informer", "localregistry", "logs", "lookup", "pullsecrets",
          "registry", "selfmanaged", "selftest", "serve", "shutdown", "tls")
ALLOWED = {"__future__", "base64", "collections.abc", "copy", "dataclasses", "enum", "functools", "json", "orjson", "re",
           "shlex", "typing", "webhook", "webhook.__version__"} | {f"webhook.{name}" for name in CORE}
# Not even indirectly: what a core import must never drag in. (`socket` is not listed: the
# package's version comes from importlib.metadata, whose email parser imports it unused.)
FORBIDDEN = ("httpx", "fastapi", "starlette", "uvicorn", "kubernetes", "yaml", "cryptography", "prometheus_client",
             "asyncio", "ssl", "subprocess", "logging", *(f"webhook.{name}" for name in SHELLS))


def imports_of(module: str) -> set[str]:
    tree = ast.parse((WEBHOOK / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                base = "webhook" + (f".{node.module}" if node.module else "")
                found |= {base} if node.module else {f"webhook.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
    return found


def test_every_module_is_classified():
    modules = {p.stem for p in WEBHOOK.glob("*.py")} - {"__init__"}
    assert modules == set(CORE) | set(SHELLS)


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_only_the_core_and_data_modules(module):
    assert imports_of(module) - ALLOWED == set()


def test_importing_the_whole_core_loads_no_io_module():
    code = ("import sys\n" + "".join(f"import webhook.{m}\n" for m in CORE) +
            f"bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {FORBIDDEN!r}))\n"
            "print(bad)\n")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_rule_catches_a_shell_import(tmp_path, monkeypatch):
    """The check itself can fail: a core module importing a shell is reported."""
    (tmp_path / "plan.py").write_text("from .registry import RegistryClient\nimport httpx\n")
    monkeypatch.setattr(sys.modules[__name__], "WEBHOOK", tmp_path)
    assert imports_of("plan") - ALLOWED == {"webhook.registry", "httpx"}
