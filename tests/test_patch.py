"""The structural JSON Patch diff, checked by applying it with jsonpatch (the oracle)."""

import copy

import jsonpatch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.patch import diff

from tests.support.golden import expected_output, inputs

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False) | st.text(alphabet="a/~b", max_size=3)
documents = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(alphabet="a/~b", max_size=3), c, max_size=4), max_leaves=25)


@settings(max_examples=1000, deadline=None)
@given(documents, documents)
def test_any_two_documents(before, after):
    assert jsonpatch.apply_patch(copy.deepcopy(before) if isinstance(before, (dict, list)) else before, diff(before, after)) == after


@settings(max_examples=500, deadline=None)
@given(st.lists(scalars, max_size=6), st.lists(scalars, max_size=6))
def test_lists_edits_keep_types_apart(before, after):
    patched = jsonpatch.apply_patch({"x": before}, diff({"x": before}, {"x": after}))
    assert patched == {"x": after} and [type(v) for v in patched["x"]] == [type(v) for v in after]


def test_true_and_one_are_different():
    assert diff({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]


def test_golden_mutations_are_additions():
    """What the webhook sends for a real mutation: adds, a replaced command or failureThreshold, a removed
    livenessProbe; never an array rewrite."""
    for case in inputs():
        if case.suffix != ".yaml":
            continue
        for before, after in zip(yaml.safe_load_all(case.read_text()), yaml.safe_load_all(expected_output(case).read_text())):
            ops = diff(before, after)
            assert jsonpatch.apply_patch(before, ops) == after
            for op in ops:
                assert op["op"] in ("add", "replace", "remove"), (case.name, op)
                if op["op"] == "replace":
                    assert op["path"].endswith(("/command", "/failureThreshold")), (case.name, op)
                if op["op"] == "remove":
                    assert op["path"].endswith("/livenessProbe"), (case.name, op)
