"""The copy-on-write JSON Patch applier, checked against jsonpatch (the oracle), and the shape of
the patches the mutation sends."""

import copy
import re

import jsonpatch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.golden import cluster_facts, expected_output, image_configs, inputs, read_facts, run_inject
from webhook.config import InjectorConfig
from webhook.inject import read_image_configs
from webhook.mutate import mutate_pod
from webhook.patch import patched

KEYS = st.text(alphabet="a/~b", max_size=3)  # "/" and "~" need escaping in a pointer
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False) | KEYS
documents = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(KEYS, c, max_size=4),
                         max_leaves=25)


def pointer(tokens) -> str:
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


@st.composite
def document_and_operation(draw):
    """A document and one valid add, replace or remove somewhere inside it."""
    document = draw(st.dictionaries(KEYS, documents, min_size=1, max_size=4))
    node, tokens = document, []
    while True:
        if isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node and draw(st.booleans()):
            key = draw(st.integers(0, len(node) - 1))
        else:
            break
        if not isinstance(node[key], (dict, list)):
            # A leaf: replace or remove it, from its parent.
            op = draw(st.sampled_from(["replace", "remove"]))
            value = draw(documents)
            return document, {"op": op, "path": pointer([*tokens, key]), **({"value": value} if op == "replace" else {})}
        node, tokens = node[key], [*tokens, key]
    if isinstance(node, list):
        index = draw(st.sampled_from(["-", *range(len(node) + 1)]))
    else:
        index = draw(KEYS)
    return document, {"op": "add", "path": pointer([*tokens, index]), "value": draw(documents)}


@settings(max_examples=1000, deadline=None)
@given(document_and_operation())
def test_any_operation_applies_as_jsonpatch_applies_it_and_leaves_the_input_alone(case):
    document, operation = case
    before = copy.deepcopy(document)
    result = patched(document, [operation])
    assert result == jsonpatch.apply_patch(copy.deepcopy(document), [operation])
    assert document == before  # copy-on-write: the input is never modified


def test_untouched_subtrees_are_shared():
    document = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app"}], "volumes": []}}
    result = patched(document, [{"op": "add", "path": "/spec/containers/0/env", "value": []}])
    assert result["metadata"] is document["metadata"] and result["spec"]["volumes"] is document["spec"]["volumes"]
    assert result["spec"] is not document["spec"] and "env" not in document["spec"]["containers"][0]


def test_escaped_keys_and_appends():
    document = {"metadata": {"annotations": {"a/b": "1"}}, "list": [1]}
    result = patched(document, [{"op": "add", "path": "/metadata/annotations/c~1d~0e", "value": "2"},
                                {"op": "add", "path": "/list/-", "value": 2},
                                {"op": "remove", "path": "/metadata/annotations/a~1b"}])
    assert result == {"metadata": {"annotations": {"c/d~e": "2"}}, "list": [1, 2]}


def test_golden_mutations_are_additions():
    """What the webhook sends for a real mutation: adds (appends with `-`), a replaced command or args
    or env PATH value, a removed livenessProbe; never a list rewritten whole."""
    config = InjectorConfig(wrapper_image="restart-process/restart-wrapper:0.1.0")
    checked = list_adds = through_lists = 0
    for case in inputs():
        documents = list(yaml.safe_load_all(case.read_text()))
        if len(documents) != 1 or documents[0].get("kind") != "Pod":
            continue
        pod = documents[0]
        configs = read_image_configs(str(image_configs(case))) if image_configs(case).exists() else None
        facts = read_facts(cluster_facts(case)) if cluster_facts(case).exists() else None
        mutation = mutate_pod(pod, config, image_configs=configs, facts=facts)
        assert patched(pod, mutation.patch) == jsonpatch.apply_patch(copy.deepcopy(pod), list(mutation.patch))
        if mutation.patch:
            checked += 1
            assert mutation.pod == yaml.safe_load(expected_output(case).read_text()), case.name
        for op in mutation.patch:
            assert op["op"] in ("add", "replace", "remove"), (case.name, op)
            if op["op"] == "replace":
                assert re.search(r"/(command|args|env/[0-9]+/value)$", op["path"]), (case.name, op)
            if op["op"] == "remove":
                assert op["path"].endswith("/livenessProbe"), (case.name, op)
            if op["op"] == "add" and isinstance(op["value"], list):
                list_adds += 1
                through_lists += any(token.isdigit() for token in op["path"].split("/"))
                # A new list (or one where there was none: absent, null or empty), not one rewritten.
                assert not _existing(pod, op["path"]), (case.name, op)
    assert checked >= 15
    # The guard must see them all, most of them under a list index (containers/N/volumeMounts, env, ...).
    assert list_adds >= 120 and through_lists >= 80, (list_adds, through_lists)


def _existing(document, path: str):
    """What a JSON pointer points at in `document`, through objects and list indices; None if nothing."""
    node = document
    for token in path[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def test_the_existing_helper_follows_list_indices():
    document = {"spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "X"}], "a/b~c": [1]}]}}
    assert _existing(document, "/spec/containers/1/env") == [{"name": "X"}]
    assert _existing(document, "/spec/containers/1/a~1b~0c") == [1]
    assert _existing(document, "/spec/containers/0/env") is None
    assert _existing(document, "/spec/containers/2/env") is None and _existing(document, "/spec/containers/-") is None


def test_the_cli_and_the_patch_agree():
    """inject writes what applying the webhook's patch gives: one mutation, two shells."""
    case = inputs()[0].parent / "sidecar.yaml"
    code, out, _ = run_inject(case)
    pod = yaml.safe_load(case.read_text())
    mutation = mutate_pod(pod, InjectorConfig(wrapper_image="restart-process/restart-wrapper:0.1.0"))
    assert code == 0 and yaml.safe_load(out) == jsonpatch.apply_patch(copy.deepcopy(pod), list(mutation.patch))
