"""The docs agree with the code: each reference table in docs/ is checked against what defines it,
the README's install commands against the images and chart they name, and every relative link in
README.md and docs/ against the files and headings it points at.

A table is found by the HTML comment on the line above it -- `<!-- annotations: settings -->`,
`<!-- flags: serve inject -->`, `<!-- chart values -->`, `<!-- wrapper options -->` -- so it can
move within its page; a table that loses its marker fails here. The checks are functions that
return the problems they find, and the last tests feed them doctored docs: they can fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.kind import RELEASE_NAMESPACE, readme_install_commands
from tests.support.paths import ROOT
from webhook import cli, contract, names
from webhook.config import DEFAULT_WRAPPER_IMAGE, InjectorConfig
from webhook.contract import ContainerSettings
from webhook.mutate import mutate_pod, wrapper_command
from webhook.synctools import tools_on_path

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
CHART = ROOT / "charts" / "restart-process-webhook"
WRAPPER_CLI = ROOT / "wrapper" / "cli.c"
WRAPPER_COMMON = ROOT / "wrapper" / "common.h"
COMMANDS = ("serve", "inject", "self-test")
_MS = {"ms": 1, "s": 1000, "m": 60_000}


# --- reading the docs ----------------------------------------------------------------------------


def tables(text: str, kind: str) -> list[tuple[tuple[str, ...], list[list[str]]]]:
    """The tables under `<!-- KIND -->` or `<!-- KIND: ARG ARG -->` markers: (args, body rows as cells)."""
    found = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.fullmatch(rf"<!-- {re.escape(kind)}(?:: ([^>]*?))? -->", line.strip())
        if not match:
            continue
        rows = []
        for row in lines[number + 1:]:
            if not row.startswith("|"):
                break
            rows.append(cells(row))
        if len(rows) < 2 or not all(set(c) <= set("-: ") for c in rows[1]):
            raise AssertionError(f"<!-- {kind} --> is not followed by a table (line {number + 1})")
        found.append((tuple((match[1] or "").split()), rows[2:]))
    return found


def cells(row: str) -> list[str]:
    """A table row's cells; a | inside a code span does not split."""
    parts, current, in_code = [], "", False
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def page(name: str) -> str:
    return (DOCS / name).read_text()


# --- the checks ----------------------------------------------------------------------------------


def annotation_problems(text: str) -> list[str]:
    """The opt-in and settings tables against webhook/contract.py: names, and defaults."""
    problems = []
    opt_in = [spans(row[0])[0] for _, rows in tables(text, "annotations: opt-in") for row in rows]
    expected = [f"{contract.DEFAULT_PREFIX}/{key}" for key in contract.OPT_IN_KEYS]
    if sorted(opt_in) != sorted(expected):
        problems.append(f"opt-in annotations: documented {opt_in}, the contract has {expected}")
    settings = {spans(row[0])[0]: row[1] for _, rows in tables(text, "annotations: settings") for row in rows}
    keys = contract.SETTING_KEYS + contract.POD_KEYS
    if sorted(settings) != sorted(keys):
        problems.append(f"settings: documented {sorted(settings)}, the contract has {sorted(keys)}")
    for key, cell in settings.items():
        default = contract.SETTING_DEFAULTS.get(key)
        if default is not None and default not in spans(cell) and f'"{default}"' not in spans(cell):
            problems.append(f"{key}: the default is {default!r}, documented as {cell!r}")
        if default is None and not re.match(r"(none|the container's)\b", cell):
            problems.append(f"{key}: nothing applies by default, documented as {cell!r}")
    return problems


def flag_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """The flag tables against the parser: each subcommand's flags, their variables and defaults."""
    problems = []
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    documented: dict[str, dict[str, list[str]]] = {command: {} for command in COMMANDS}
    for commands, rows in tables(text, "flags"):
        for command in commands:
            if command not in documented:
                problems.append(f"a flags table for {command}, which is no subcommand")
                continue
            for row in rows:
                for flag in (s for s in spans(row[0]) if s.startswith("-")):
                    if flag in documented[command]:
                        problems.append(f"{command} {flag} is documented twice")
                    documented[command][flag] = row
    for command in COMMANDS:
        actions = {flag: action for action in subcommands[command]._actions for flag in action.option_strings
                   if action.dest != "help"}
        missing, extra = set(actions) - set(documented[command]), set(documented[command]) - set(actions)
        problems += [f"{command} {flag} is not documented" for flag in sorted(missing)]
        problems += [f"{command} {flag} is documented but does not exist" for flag in sorted(extra)]
        for flag in sorted(set(actions) & set(documented[command])):
            action, (_, environment, default, *_) = actions[flag], documented[command][flag]
            variable = re.search(r"\(env (RESTART_PROCESS_\w+)", action.help or "")
            if (spans(environment) or ["none"])[0] != (variable[1] if variable else "none"):
                problems.append(f"{command} {flag}: its variable is {variable[1] if variable else 'none'}, "
                                f"documented as {environment!r}")
            problems += _default_problems(f"{command} {flag}", action, default)
    return problems


def _default_problems(what: str, action: argparse.Action, cell: str) -> list[str]:
    value = action.default
    if isinstance(action, argparse._StoreTrueAction):
        return [] if cell.startswith("off") else [f"{what}: an on/off flag, off by default, documented as {cell!r}"]
    if action.dest == "default_arch" or value is None or value == "" or isinstance(value, dict):
        return []  # the machine's, or nothing: said in words
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    if shown in spans(cell) or shown.replace(cli.__version__, "<version>") in spans(cell):
        return []
    return [f"{what}: the default is {shown!r}, documented as {cell!r}"]


def chart_value_problems(text: str, values: dict) -> list[str]:
    """The chart values table against values.yaml: every leaf (or documented subtree) once, with
    its default."""
    problems = []
    documented = {}
    for _, rows in tables(text, "chart values"):
        for row in rows:
            path = spans(row[0])[0]
            if path in documented:
                problems.append(f"{path} is documented twice")
            documented[path] = row[1]
    covered = set()
    for path, cell in documented.items():
        node = values
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                problems.append(f"{path} is documented but is not in values.yaml")
                break
            node = node[key]
        else:
            covered |= {path} | {f"{path}.{leaf}" for leaf in _leaves(node)}
            if _shown(node) not in spans(cell):
                problems.append(f"{path}: the default is {_shown(node)}, documented as {cell!r}")
    problems += [f"{leaf} is in values.yaml but not documented" for leaf in _leaves(values) if leaf not in covered]
    nested = [p for p in documented for q in documented if q.startswith(p + ".")]
    problems += [f"{p} is documented as a whole and in parts" for p in nested]
    return problems


def _leaves(node, prefix: str = "") -> list[str]:
    if not isinstance(node, dict) or not node:
        return []
    found = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        found += _leaves(value, path + ".") if isinstance(value, dict) and value else [path]
    return found


def _shown(value) -> str:
    """A default as the table shows it: strings bare (empty as ""), the rest as JSON."""
    return value if isinstance(value, str) and value else json.dumps(value)


def wrapper_defaults() -> dict[str, str]:
    """restart-wrapper run's defaults as wrapper/cli.c sets them, in the grammar of its options."""
    source = WRAPPER_CLI.read_text()
    initial = re.search(r"\*out = \(struct run_options\)\{(.*?)\};", source, re.S)[1]
    fields = dict(re.findall(r"\.(\w+) = (\w+)", initial))
    policies = {"EXIT_RERUN": "rerun", "EXIT_RESTART": "restart", "EXIT_CONTINUE": "continue"}
    restart_file = re.search(r'#define RW_DEFAULT_RESTART_FILE "([^"]+)"', WRAPPER_COMMON.read_text())[1]
    return {
        "restart-file": restart_file,
        "debounce": f"{int(fields['debounce_ms'])}ms",
        "stop-timeout": f"{int(fields['stop_timeout_ms'])}ms",
        "stop-signal": signal.Signals[fields["stop_signal"]].name.removeprefix("SIG"),
        "exit-policy": policies[fields["exit_policy"]],
    }


def wrapper_option_problems(text: str) -> list[str]:
    """The wrapper's options table against wrapper/cli.c: names, and the defaults it sets."""
    problems = []
    options = set(re.findall(r'strcmp\(name, "([a-z-]+)"\)', WRAPPER_CLI.read_text()))
    documented = {}
    for _, rows in tables(text, "wrapper options"):
        for row in rows:
            documented[spans(row[0])[0].removeprefix("--").split("=")[0]] = row[1]
    problems += [f"--{o} is not documented" for o in sorted(options - set(documented))]
    problems += [f"--{o} is documented but does not exist" for o in sorted(set(documented) - options)]
    defaults = wrapper_defaults()
    for option, cell in documented.items():
        if option not in defaults:
            if not cell.startswith("none"):
                problems.append(f"--{option}: there is no default, documented as {cell!r}")
            continue
        shown = (spans(cell) or [""])[0]
        if _in_ms(shown) != _in_ms(defaults[option]):
            problems.append(f"--{option}: the default is {defaults[option]!r}, documented as {cell!r}")
    return problems


def _in_ms(value: str):
    """A duration in milliseconds, so that 5s and 5000ms agree; anything else as it is."""
    match = re.fullmatch(r"([0-9]+)(ms|s|m)", value)
    return int(match[1]) * _MS[match[2]] if match else value


def slug(heading: str, seen: dict[str, int]) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation gone, spaces as hyphens,
    -1, -2, ... for repeats."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "")).replace(" ", "-")
    count = seen.get(text, 0)
    seen[text] = count + 1
    return f"{text}-{count}" if count else text


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    return {slug(m[1], seen) for m in re.finditer(r"^#{1,6} (.+)$", _prose(path.read_text()), re.M)}


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def link_problems(path: Path) -> list[str]:
    """Relative links from `path` that lead to no file, out of the checkout, or to no heading."""
    problems = []
    prose = re.sub(r"`[^`\n]*`", "", _prose(path.read_text()))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        where = f"{path.relative_to(ROOT)}: ({target})"
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{where} leads out of the checkout")
        elif not resolved.exists():
            problems.append(f"{where} leads to no file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: {resolved.name} has no heading #{anchor}")
    return problems


def bench_problems(makefile: str) -> list[str]:
    """`make bench` runs every benchmark, and docs/benchmarks.md links each."""
    recipe = re.search(r"^bench:.*?\n((?:\t.*\n)+)", makefile, re.M)[1]
    run = set(re.findall(r"-m benchmarks\.(\w+)", recipe))
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__", "stats"}
    problems = [f"make bench does not run benchmarks/{m}.py" for m in sorted(modules - run)]
    problems += [f"make bench runs benchmarks.{m}, which does not exist" for m in sorted(run - modules)]
    linked = set(re.findall(r"\(\.\./benchmarks/(\w+)\.py\)", page("benchmarks.md")))
    problems += [f"docs/benchmarks.md does not link benchmarks/{m}.py" for m in sorted(modules - linked)]
    return problems


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture
def parser(monkeypatch):
    """The command line as it is without any RESTART_PROCESS_* variable, which would change defaults."""
    for variable in [v for v in os.environ if v.startswith(cli.ENV_PREFIX)]:
        monkeypatch.delenv(variable)
    return cli._parser()


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_the_annotation_tables_are_the_contracts():
    assert annotation_problems(page("annotations.md")) == []


def test_the_documented_annotation_defaults_are_what_the_code_applies():
    """contract.SETTING_DEFAULTS is data for the docs; each value is checked against the code that
    really applies when the annotation is absent: the wrapper's own defaults, the server's."""
    defaults = contract.SETTING_DEFAULTS
    assert set(defaults) == set(contract.SETTING_KEYS + contract.POD_KEYS)
    for key, value in defaults.items():
        if value is not None:
            parse = contract.parse_delivery if key == contract.DELIVERY else contract._PARSERS[key]
            parse(value)  # a value the annotation itself accepts
    wrapper = wrapper_defaults()
    for key in (contract.EXIT_POLICY, contract.STOP_SIGNAL, contract.STOP_TIMEOUT, contract.DEBOUNCE):
        assert _in_ms(defaults[key]) == _in_ms(wrapper[key]), key  # the webhook passes nothing: the wrapper's
    # The webhook always passes a restart file: the annotation's, else this one.
    assert wrapper_command("app", ["/app"], ContainerSettings(), None, None)[2] == \
        f"--restart-file={defaults[contract.RESTART_FILE]}" == f"--restart-file={wrapper['restart-file']}"
    config = InjectorConfig()
    assert config.default_exit_policy is None  # so the wrapper's applies
    assert config.default_liveness_probe == defaults[contract.LIVENESS_PROBE]
    assert config.delivery == defaults[contract.DELIVERY]
    container = {"name": "app", "env": [{"name": "PATH", "value": "/bin"}]}
    stated = ContainerSettings(sync_tools=contract.parse_boolean(defaults[contract.SYNC_TOOLS]))
    assert tools_on_path(container, ContainerSettings(), None) == tools_on_path(container, stated, None) is not None
    # restart-on-sync: a pod that does not say is wrapped as one that states the default.
    def wrapped(annotations: dict) -> dict:
        pod = {"metadata": {"annotations": {f"{contract.DEFAULT_PREFIX}/enabled": "true", **annotations}},
               "spec": {"containers": [{**container, "image": "app:dev", "command": ["/app"]}]}}
        return mutate_pod(pod, config).pod["spec"]
    unset = wrapped({})
    stated_on_sync = {f"{contract.DEFAULT_PREFIX}/{contract.RESTART_ON_SYNC}": defaults[contract.RESTART_ON_SYNC]}
    assert unset == wrapped(stated_on_sync)
    assert f"--sync-file={names.sync_file('app')}" in unset["containers"][0]["command"]


def test_the_flag_tables_are_the_command_line(parser):
    assert flag_problems(page("server.md"), parser) == []


def test_the_chart_values_table_is_values_yaml(values):
    assert chart_value_problems(page("chart.md"), values) == []


def test_the_wrapper_options_table_is_the_wrappers_parser():
    assert wrapper_option_problems(page("wrapper.md")) == []


def test_the_readme_installs_the_images_and_chart_the_code_names(values):
    """The four lines tests/e2e runs as written: the images' names are the server's default and
    the chart's, at the chart's version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    webhook_image = f"{values['image']['repository']}:{chart['appVersion']}"
    assert DEFAULT_WRAPPER_IMAGE == f"{values['wrapper']['image']['repository']}:{chart['appVersion']}"
    commands = [line.split("#")[0].split() for line in readme_install_commands()]
    assert commands == [
        ["docker", "build", "--target", "wrapper", "-t", DEFAULT_WRAPPER_IMAGE, "."],
        ["docker", "build", "--target", "webhook", "-t", webhook_image, "."],
        ["kind", "load", "docker-image", DEFAULT_WRAPPER_IMAGE, webhook_image],
        ["helm", "install", "rpw", "charts/restart-process-webhook", "--namespace", RELEASE_NAMESPACE,
         "--create-namespace"],
    ]


def test_make_bench_runs_every_benchmark_and_the_docs_link_each():
    assert bench_problems((ROOT / "Makefile").read_text()) == []


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(path):
    assert link_problems(path) == []


def test_the_readme_links_every_page_of_the_docs():
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert linked == {p.name for p in DOCS.glob("*.md")}


# --- the checks can fail -------------------------------------------------------------------------


def test_a_wrong_or_missing_annotation_is_found():
    text = page("annotations.md").replace("| `debounce` | `100ms` |", "| `debounce` | `250ms` |")
    text = text.replace("| `restart-process.dev/images` |", "| `restart-process.dev/image` |")
    assert annotation_problems(text) == [
        "opt-in annotations: documented ['restart-process.dev/enabled', 'restart-process.dev/containers', "
        "'restart-process.dev/image'], the contract has ['restart-process.dev/enabled', "
        "'restart-process.dev/containers', 'restart-process.dev/images']",
        "debounce: the default is '100ms', documented as '`250ms`'",
    ]


def test_a_missing_flag_a_wrong_variable_and_a_wrong_default_are_found(parser):
    text = page("server.md")
    text = re.sub(r"^\| `--port` .*\n", "", text, flags=re.M)
    text = text.replace("| `--log-level` | `RESTART_PROCESS_LOG_LEVEL` | `info` |",
                        "| `--log-level` | `RESTART_PROCESS_LOGLEVEL` | `debug` |")
    text = text.replace("| `--webhook-namespace` |", "| `--webhook-namespaces` |")
    assert flag_problems(text, parser) == [
        "serve --port is not documented",
        "serve --log-level: its variable is RESTART_PROCESS_LOG_LEVEL, documented as '`RESTART_PROCESS_LOGLEVEL`'",
        "serve --log-level: the default is 'info', documented as '`debug`'",
        "self-test --webhook-namespace is not documented",
        "self-test --webhook-namespaces is documented but does not exist",
    ]


def test_a_changed_chart_default_and_an_undocumented_value_are_found(values):
    changed = {**values, "replicaCount": 2, "newValue": {"enabled": True}}
    assert chart_value_problems(page("chart.md"), changed) == [
        "replicaCount: the default is 2, documented as '`1`'",
        "newValue.enabled is in values.yaml but not documented",
    ]


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A heading\n\n[ok](#a-heading) [gone](b.md) [no](#nowhere)\n"
                                           "`[in code](missing.md)`\n")
    assert link_problems(tmp_path / "docs" / "a.md") == [
        "docs/a.md: (b.md) leads to no file",
        "docs/a.md: (#nowhere): a.md has no heading #nowhere",
    ]

