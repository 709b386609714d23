"""`restart-process inject`: manifests in, injected manifests out, offline (a shell).

Reads YAML (multi-document) or JSON, plans every pod it finds, looks up the images all of them
need in one go, applies the plans and writes YAML. Warnings go to stderr, each naming its document.
There is no cluster to look at: delivery `auto` means the init container, `image-volume` the image
volume.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

import yaml

from .config import InjectSettings
from .delivery import ClusterFacts
from .images import ImageConfig, path_from_env
from .lookup import ImageLookup
from .manifests import find_pods, replace_pods
from .mutate import apply
from .plan import plan_pod


class InputError(Exception):
    """Input that cannot be read as Kubernetes documents; the message says where."""


def run(settings: InjectSettings, stdin: TextIO | None = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None, facts: ClusterFacts | None = None) -> int:
    """`facts`: render as the webhook would for a cluster it sees so (the golden cases use it; the
    command line has no cluster)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        text = stdin.read() if settings.filename == "-" else Path(settings.filename).read_text()
        documents = load_documents(text)
    except (OSError, UnicodeDecodeError, InputError) as error:
        print(f"restart-process inject: {error}", file=stderr)
        return 1
    try:
        known = read_image_configs(settings.image_configs_file) if settings.image_configs_file else {}
    except (OSError, ValueError) as error:
        print(f"restart-process inject: --image-configs: {error}", file=stderr)
        return 1

    found = [find_pods(document) for document in documents]
    plans = [[plan_pod(pod.pod, settings.injector, pod.namespace) for pod in pods] for pods in found]
    configs = iter(asyncio.run(_look_up(settings, known, [plan for document in plans for plan in document])))

    output = []
    for index, (document, pods, document_plans) in enumerate(zip(documents, found, plans), start=1):
        replacements = []
        for pod, plan in zip(pods, document_plans):
            mutation = apply(plan, settings.injector, next(configs), facts)
            for warning in mutation.warnings:
                print(f"{warning} [document {index}, {pod.label}]", file=stderr)
            replacements.append((pod, mutation.pod))
        output.append(replace_pods(document, replacements))
    stdout.write(dump_documents(output))
    return 0


async def _look_up(settings: InjectSettings, known: dict, plans: list) -> list:
    lookup = ImageLookup(settings.lookup, known)
    try:
        return await lookup.for_plans(plans)
    finally:
        await lookup.close()


def read_image_configs(path: str) -> dict[str, ImageConfig]:
    """{"image": {"Entrypoint": [...], "Cmd": [...], "StopSignal": "...", "Env": [...]}}: `docker inspect`'s keys
    under Config."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object of image -> {Entrypoint, Cmd}")

    def words(value) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(w, str) for w in value))

    configs = {}
    for image, config in raw.items():
        stop_signal = config.get("StopSignal") if isinstance(config, dict) else None
        if (not isinstance(config, dict) or not words(config.get("Entrypoint")) or not words(config.get("Cmd"))
                or not words(config.get("Env")) or not isinstance(stop_signal, (str, type(None)))):
            raise ValueError(f'"{image}": expected {{"Entrypoint": [...], "Cmd": [...], "StopSignal": "...", '
                             '"Env": ["PATH=..."]} (lists of strings, a string, or null)')
        configs[image] = ImageConfig(tuple(config.get("Entrypoint") or ()), tuple(config.get("Cmd") or ()),
                                     stop_signal or None, path_from_env(config.get("Env")))
    return configs


def load_documents(text: str) -> list[dict]:
    """Parse JSON or (multi-document) YAML into a list of objects; errors say where."""
    if text.lstrip().startswith("{"):
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError as error:
            raise InputError(f"document 1, line {error.lineno}, column {error.colno}: {error.msg}") from None
    else:
        documents = []
        try:
            for document in yaml.safe_load_all(text):
                documents.append(document)
        except yaml.YAMLError as error:
            where = f"document {len(documents) + 1}"
            mark = getattr(error, "problem_mark", None)
            if mark is not None:
                where += f", line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(error, "problem", None) or str(error)
            raise InputError(f"{where}: {problem}") from None
    objects = []
    for index, document in enumerate(documents, start=1):
        if document is None:  # an empty document between two `---`
            continue
        if not isinstance(document, dict):
            raise InputError(f"document {index}: expected a Kubernetes object (a mapping), got {type(document).__name__}")
        objects.append(document)
    return objects


def dump_documents(documents: list[dict]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, width=1 << 16, explicit_start=len(documents) > 1)
