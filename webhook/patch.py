"""Applying a JSON Patch (RFC 6902) copy-on-write (pure).

The mutation is built as patch operations (mutate.py): the webhook sends them as they are, and
`inject` gets the mutated document by applying them here. New dicts and lists only along the
paths an operation touches; everything else is shared with the input, which is never modified.
Only what the mutation emits is supported: add (including `-`, after a list's last element),
replace and remove. The tests apply every patch with `jsonpatch` too, and compare.
"""

from __future__ import annotations


def patched(document, operations) -> object:
    for operation in operations:
        document = _apply(document, _tokens(operation["path"]), operation)
    return document


def _tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _apply(node, tokens: list[str], operation: dict):
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, list):
        index = len(node) if head == "-" else int(head)
        copied = list(node)
        if rest:
            copied[index] = _apply(node[index], rest, operation)
        elif operation["op"] == "add":
            copied.insert(index, operation["value"])
        elif operation["op"] == "replace":
            copied[index] = operation["value"]
        elif operation["op"] == "remove":
            del copied[index]
        else:
            raise ValueError(f"unsupported operation {operation['op']!r}")
        return copied
    if not isinstance(node, dict):
        raise ValueError(f"cannot apply {operation['path']!r}: not a container at {head!r}")
    copied = dict(node)
    if rest:
        copied[head] = _apply(node[head], rest, operation)
    elif operation["op"] in ("add", "replace"):
        copied[head] = operation["value"]
    elif operation["op"] == "remove":
        del copied[head]
    else:
        raise ValueError(f"unsupported operation {operation['op']!r}")
    return copied
