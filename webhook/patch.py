"""A JSON Patch (RFC 6902) from one JSON document to another (pure).

`jsonpatch.make_patch` searches lists for moved elements, which made it 80% of an
admission's cost (about 1.2 ms of 1.5 ms for a typical pod). Our mutations only insert,
append and edit in place, so a structural diff is enough and much cheaper: per list,
strip the common prefix and suffix, recurse where the middles line up, and add or remove
the rest. Insertions into arrays of objects (initContainers, volumes, volumeMounts) come
out as `add` operations; a changed list of plain values (a command) is replaced whole.
The tests check every patch by applying it with `jsonpatch` to random documents.
"""

from __future__ import annotations


_MISSING = object()


def diff(before, after, path: str = "") -> list[dict]:
    if before is after:  # shared with the input: untouched by the mutation
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        removed = before.keys() - after.keys()
        ops = [{"op": "remove", "path": f"{path}/{_escape(key)}"} for key in before if key in removed] if removed else []
        for key, value in after.items():
            old = before.get(key, _MISSING)
            if old is value:
                continue
            if old is _MISSING:
                ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
            else:
                ops += diff(old, value, f"{path}/{_escape(key)}")
        return ops
    if isinstance(before, list) and isinstance(after, list):
        return _diff_lists(before, after, path)
    if _same(before, after):
        return []
    return [{"op": "replace", "path": path, "value": after}]


def _diff_lists(before: list, after: list, path: str) -> list[dict]:
    if not _has_containers(before) and not _has_containers(after):
        # A list of plain values (a command line) reads best replaced whole.
        return [] if _same(before, after) else [{"op": "replace", "path": path, "value": after}]
    start = 0
    while start < len(before) and start < len(after) and _same(before[start], after[start]):
        start += 1
    end_before, end_after = len(before), len(after)
    while end_before > start and end_after > start and _same(before[end_before - 1], after[end_after - 1]):
        end_before -= 1
        end_after -= 1
    if end_before - start == end_after - start:  # same shape: edit each element in place
        return [op for i in range(start, end_before) for op in diff(before[i], after[i], f"{path}/{i}")]
    if start == end_before:  # only insertions (what the mutation does to mounts, env, volumes)
        return [{"op": "add", "path": f"{path}/{i}", "value": after[i]} for i in range(start, end_after)]
    by_name = _by_name(before[start:end_before], after[start:end_after], start, path)
    if by_name is not None:
        return by_name
    # Remove from the back so indices stay valid, then add in order.
    ops = [{"op": "remove", "path": f"{path}/{i}"} for i in range(end_before - 1, start - 1, -1)]
    ops += [{"op": "add", "path": f"{path}/{i}", "value": after[i]} for i in range(start, end_after)]
    return ops


def _by_name(before: list, after: list, offset: int, path: str) -> list[dict] | None:
    """Align named elements (containers, volumes) by name, as Kubernetes itself merges them: an
    element inserted before an edited one is one `add` and the edit, not a rewrite of the list.
    None when the elements are not all uniquely named or the common ones changed order."""
    names_before = [_name(v) for v in before]
    names_after = [_name(v) for v in after]
    if None in names_before or None in names_after or len(set(names_before)) < len(names_before) \
            or len(set(names_after)) < len(names_after):
        return None
    kept = [n for n in names_before if n in names_after]
    if kept != [n for n in names_after if n in names_before]:
        return None
    ops = [{"op": "remove", "path": f"{path}/{offset + i}"}
           for i in range(len(before) - 1, -1, -1) if names_before[i] not in names_after]
    old = {name: value for name, value in zip(names_before, before)}
    for i, (name, value) in enumerate(zip(names_after, after)):
        if name in old:
            ops += diff(old[name], value, f"{path}/{offset + i}")
        else:
            ops.append({"op": "add", "path": f"{path}/{offset + i}", "value": value})
    return ops


def _has_containers(values: list) -> bool:
    for value in values:
        if isinstance(value, (dict, list)):
            return True
    return False


def _name(value) -> str | None:
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


def _same(a, b) -> bool:
    """Equality that keeps JSON's types apart (Python says True == 1 == 1.0)."""
    if a is b:  # subtrees the mutation left alone are shared, not copied: no need to look inside
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _escape(key: str) -> str:
    if "~" not in key and "/" not in key:
        return key
    return key.replace("~", "~0").replace("/", "~1")  # annotation keys contain "/"
